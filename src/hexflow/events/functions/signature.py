"""Arguments of a function as a pydantic model built from its signature and type hints:
its JSON Schema is what callers are checked against, and in the worker it turns JSON
arguments into the types the hints name. The FunctionContext parameter is left out."""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from hexflow.events.functions.context import FunctionContext


def signature_model(fn: Any, name: str) -> tuple[type[BaseModel], str | None]:
    """(the model of ``fn``'s arguments, the name of its context parameter or None)."""
    sig = inspect.signature(fn, eval_str=True)
    fields: dict[str, Any] = {}
    ctx_param = None
    extra = "forbid"
    for param in sig.parameters.values():
        hint = param.annotation
        if hint is FunctionContext:
            ctx_param = param.name
            continue
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise TypeError(
                f"parameter {param.name!r}: functions take keyword arguments only (no *args, "
                "no positional-only parameters)"
            )
        annotation = Any if hint is param.empty else hint
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)  # type: ignore[typeddict-item]
    model = create_model(f"{name}_args", __config__=config, **fields)
    return model, ctx_param


def json_schema(fn: Any, name: str) -> dict[str, Any]:
    model, _ = signature_model(fn, name)
    schema = model.model_json_schema()
    schema["title"] = name
    return schema
