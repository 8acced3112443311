"""The worker side of a function: ``FunctionRef`` is what the gateway sends to a warm
worker of the local WorkerPool (pickled by reference, cached by the worker), and what the
worker calls with each invocation's arguments.

The function is loaded once per worker (imported, or its uploaded source executed in a
fresh module), its arguments parsed by the pydantic model of its signature (JSON values become
the types its hints name), and called with a ``FunctionContext``. The answer is JSON-ready:
``{"value": ..., "intents": [...]}``.
"""

from __future__ import annotations

import importlib
import os
import types
from typing import Any

from hexflow.events.functions.context import FunctionContext, enter, leave
from hexflow.events.functions.signature import signature_model


class FunctionRef:
    def __init__(
        self,
        project: str,
        name: str,
        version: int,
        kind: str,
        target: str,
        source: str | None,
        search_path: tuple[str, ...] = (),
    ) -> None:
        self.project = project
        self.name = name
        self.version = version
        self.kind = kind
        self.target = target
        self.source = source
        self.search_path = search_path  # where the server imports from (its working directory)
        self._loaded: tuple[Any, Any, str | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def load(self) -> tuple[Any, Any, str | None]:
        """(the function, the model of its arguments, the name of its context parameter)."""
        if self._loaded is None:
            import sys

            for path in reversed(self.search_path):
                if path not in sys.path:
                    sys.path.insert(0, path)
            fn = load_function(self.kind, self.target, self.source, f"{self.project}.{self.name}")
            model, ctx_param = signature_model(fn, self.name)
            self._loaded = (fn, model, ctx_param)
        return self._loaded

    def __call__(
        self, args: dict[str, Any] | None, invocation_id: str, attempt: int
    ) -> dict[str, Any]:
        from pydantic_core import to_jsonable_python

        fn, model, ctx_param = self.load()
        if args is None:  # a warm-up: the function and what it imports are loaded now
            return {"value": None, "intents": []}
        parsed = model.model_validate(args)
        kwargs = {name: getattr(parsed, name) for name in model.model_fields}
        kwargs.update(parsed.model_extra or {})
        ctx = FunctionContext(
            invocation_id, self.project, self.name, self.version, attempt, workdir=os.getcwd()
        )
        if ctx_param:
            kwargs[ctx_param] = ctx
        token = enter(ctx)
        try:
            value = fn(**kwargs)
        finally:
            leave(token)
        return {"value": to_jsonable_python(value), "intents": ctx.intents}


def load_function(kind: str, target: str, source: str | None, module_name: str) -> Any:
    if kind == "import":
        module_path, _, attr = target.partition(":")
        fn = getattr(importlib.import_module(module_path), attr)
    else:
        assert source is not None
        module = types.ModuleType(f"hexflow_fn_{module_name.replace('.', '_')}")
        code = compile(source, f"<function {module_name}>", "exec")
        exec(code, module.__dict__)  # noqa: S102 - the project's own code, in its worker
        fn = module.__dict__.get(target)
        if fn is None:
            raise LookupError(f"the source defines no {target!r}")
    if not callable(fn):
        raise TypeError(f"{target} is not callable")
    return fn
