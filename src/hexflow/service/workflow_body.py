"""Workflow documents in request bodies: the YAML/JSON file format of ``flow.yamlspec``,
read from memory, or a Python workflow in the SDK's wire format (``flow.wire``), whose task
payloads stay opaque bytes here. Errors keep the line and field (``WorkflowFileError``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from hexflow.errors import ServiceError
from hexflow.flow import wire
from hexflow.flow.yamlspec import load_workflow_text
from hexflow.model import TaskSpec

YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)
JSON_TYPES = frozenset({"application/json"})
PYTHON_TYPES = frozenset({wire.MEDIA_TYPE})


@dataclass(frozen=True)
class WorkflowDocument:
    name: str
    specs: list[TaskSpec]
    fingerprint: str  # what makes two submissions the same request (idempotency)


def read_workflow(
    body: bytes,
    content_type: str | None,
    params: Mapping[str, str],
    *,
    max_bytes: int,
    allow_python: bool = True,
) -> WorkflowDocument:
    media = (content_type or "application/yaml").split(";", 1)[0].strip().lower()
    if media in PYTHON_TYPES and not allow_python:
        raise ServiceError(
            "this server does not accept Python workflows",
            hint="submit a YAML or JSON workflow; the administrator turned Python workflows "
            "off (hexflow server --no-python-workflows)",
            status=415,
        )
    if media not in YAML_TYPES | JSON_TYPES | PYTHON_TYPES:
        raise ServiceError(
            f"unsupported content type {media!r}",
            hint="send the workflow as application/yaml or application/json",
            status=415,
        )
    if len(body) > max_bytes:
        raise ServiceError(
            f"the workflow document is {len(body)} bytes; the limit is {max_bytes}",
            hint="split the workflow, or raise the server's limit",
            status=413,
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServiceError(
            f"the workflow document is not UTF-8 (byte {exc.start})",
            hint="encode the document as UTF-8",
            status=400,
        ) from None
    is_json = media in JSON_TYPES
    digest = hashlib.sha256()
    digest.update(json.dumps([media if is_json else "yaml", sorted(params.items())]).encode())
    digest.update(b"\0" + body)
    if media in PYTHON_TYPES:
        if params:
            raise ServiceError(
                "a Python workflow takes no ?param=",
                hint="pass values as arguments of the task calls instead",
                status=422,
                field="param",
            )
        name, specs = wire.decode_workflow(text)
        return WorkflowDocument(name, specs, digest.hexdigest())
    wf = load_workflow_text(text, params, json_format=is_json)
    return WorkflowDocument(wf.name, list(wf.specs.values()), digest.hexdigest())


def parse_params(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` query parameters (``?param=steps=500``)."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ServiceError(
                f"bad workflow parameter {item!r}",
                hint="write param=KEY=VALUE, e.g. ?param=steps=500",
                status=422,
                field="param",
            )
        params[key.strip()] = value
    return params
