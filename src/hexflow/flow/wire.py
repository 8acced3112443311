"""The wire format of a Python workflow sent to a server (``wf.submit(client)``): its task
specs as JSON, each Python task's function and arguments as base64 bytes.

Decoding builds TaskSpecs field by field from JSON and never unpickles anything: a task's
payload stays opaque bytes until the worker that runs the task loads it. Every field is
checked, and an error names it (``tasks[3].resources.cpus``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from hexflow.errors import SpecError, WorkflowFileError
from hexflow.model import QoS, Resources, TaskKind, TaskSpec
from hexflow.model.datasets import Dataset
from hexflow.model.spec import RetryPolicy

FORMAT = "hexflow.workflow/1"
MEDIA_TYPE = "application/vnd.hexflow.workflow+json"

_SPEC_KEYS = frozenset(
    {
        "id", "name", "kind", "resources", "qos", "deps", "inputs", "payload", "command",
        "shell", "env", "cwd", "retry", "timeout", "deadline", "cache", "cache_salt",
        "checkpoint", "tags", "image", "mounts", "sites", "reads", "writes", "gang",
        "exclusive",
    }
)  # fmt: skip


def encode_workflow(name: str, specs: Iterable[TaskSpec]) -> bytes:
    doc = {"format": FORMAT, "name": name, "tasks": [_encode_spec(s) for s in specs]}
    return json.dumps(doc, separators=(",", ":")).encode()


def _encode_spec(s: TaskSpec) -> dict[str, Any]:
    r = s.resources
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind.value,
        "resources": {
            "cpus": r.cpus,
            "memory": r.memory,
            "gpus": r.gpus,
            "nodes": r.nodes,
            "walltime": r.walltime,
        },
        "qos": s.qos.value,
        "deps": list(s.deps),
        "inputs": list(s.inputs),
        "payload": base64.b64encode(s.payload).decode() if s.payload is not None else None,
        "command": list(s.command) if s.command is not None else None,
        "shell": s.shell,
        "env": dict(s.env),
        "cwd": s.cwd,
        "retry": {
            "retries": s.retry.retries,
            "backoff": s.retry.backoff,
            "max_backoff": s.retry.max_backoff,
        },
        "timeout": s.timeout,
        "deadline": s.deadline,
        "cache": s.cache,
        "cache_salt": s.cache_salt,
        "checkpoint": s.checkpoint,
        "tags": dict(s.tags),
        "image": s.image,
        "mounts": list(s.mounts),
        **({"sites": list(s.sites)} if s.sites else {}),
        **({"gang": s.gang} if s.gang is not None else {}),
        **({"exclusive": True} if s.exclusive else {}),
        **({"reads": [_encode_dataset(d) for d in s.reads]} if s.reads else {}),
        **({"writes": [_encode_dataset(d) for d in s.writes]} if s.writes else {}),
    }


def decode_workflow(text: str) -> tuple[str, list[TaskSpec]]:
    """(name, specs) from the JSON text; ``WorkflowFileError`` names the field at fault."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowFileError(
            f"workflow:{exc.lineno}: not valid JSON: {exc.msg}",
            hint="send what hexflow.Client encodes (wf.submit(client))",
            line=exc.lineno,
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad("format", f"expected a document with format {FORMAT!r}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("name", "expected a non-empty workflow name")
    tasks = doc.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise _bad("tasks", "expected a non-empty list of tasks")
    specs: list[TaskSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(tasks):
        where = f"tasks[{i}]"
        spec = _decode_spec(item, where)
        if spec.id in seen:
            raise _bad(f"{where}.id", f"duplicate task id {spec.id!r}")
        for dep in spec.deps:
            if dep not in seen:
                raise _bad(f"{where}.deps", f"unknown or later task {dep!r} (list tasks in order)")
        seen.add(spec.id)
        specs.append(spec)
    return name, specs


def _decode_spec(item: object, where: str) -> TaskSpec:
    if not isinstance(item, dict):
        raise _bad(where, "expected an object")
    unknown = set(item) - _SPEC_KEYS
    if unknown:
        raise _bad(f"{where}.{sorted(unknown)[0]}", "unknown task field")
    try:
        kind = TaskKind(_get(item, "kind", str, where))
        cwd = _opt(item, "cwd", str, where)
        if cwd is not None and (cwd.startswith("/") or ".." in cwd.split("/")):
            raise _bad(f"{where}.cwd", "must be a path inside the run's directory")
        return TaskSpec(
            id=_get(item, "id", str, where),
            name=_get(item, "name", str, where),
            kind=kind,
            resources=_resources(item.get("resources") or {}, f"{where}.resources"),
            qos=QoS.parse(_opt(item, "qos", str, where)),
            deps=tuple(_strings(item, "deps", where)),
            inputs=tuple(_strings(item, "inputs", where)),
            payload=_payload(item.get("payload"), f"{where}.payload"),
            command=_command(item.get("command"), f"{where}.command"),
            shell=bool(_opt(item, "shell", bool, where)),
            env=_mapping(item, "env", where),
            cwd=cwd,
            retry=_retry(item.get("retry") or {}, f"{where}.retry"),
            timeout=_opt(item, "timeout", float, where),
            deadline=_opt(item, "deadline", float, where),
            cache=bool(_opt(item, "cache", bool, where)),
            cache_salt=_opt(item, "cache_salt", str, where) or "",
            checkpoint=bool(_opt(item, "checkpoint", bool, where)),
            tags=_mapping(item, "tags", where),
            image=_opt(item, "image", str, where),
            mounts=tuple(_strings(item, "mounts", where)),
            sites=tuple(_strings(item, "sites", where)),
            reads=_datasets(item, "reads", "inputs", where),
            writes=_datasets(item, "writes", "outputs", where),
            gang=_opt(item, "gang", str, where),
            exclusive=bool(_opt(item, "exclusive", bool, where)),
        )
    except WorkflowFileError:
        raise
    except (SpecError, ValueError) as exc:
        message = exc.message if isinstance(exc, SpecError) else str(exc)
        field = exc.fields.get("field") if isinstance(exc, SpecError) else None
        raise _bad(f"{where}.{field}" if field else where, message) from None


def _datasets(item: Mapping[str, Any], key: str, role: str, where: str) -> tuple[Dataset, ...]:
    value = item.get(key) or []
    if not isinstance(value, list):
        raise _bad(f"{where}.{key}", "expected a list of datasets")
    return tuple(Dataset.of(v, role) for v in value)


def _encode_dataset(d: Dataset) -> dict[str, Any]:
    return {"name": d.name, "version": d.version, "tier": d.tier, "metadata": dict(d.metadata)}


def _bad(field: str, message: str) -> WorkflowFileError:
    return WorkflowFileError(
        f"{field}: {message}",
        hint="send what hexflow.Client encodes (wf.submit(client)); see docs/sdk.md",
        field=field,
    )


def _get(item: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = _opt(item, key, kind, where)
    if value is None:
        raise _bad(f"{where}.{key}", "missing")
    return value


def _opt(item: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = item.get(key)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _bad(f"{where}.{key}", f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _strings(item: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = item.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where}.{key}", "expected a list of strings")
    return value


def _mapping(item: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = item.get(key) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad(f"{where}.{key}", "expected an object of strings")
    return value


def _payload(value: object, field: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(field, "expected base64 text")
    try:
        return base64.b64decode(value.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(field, "not valid base64") from None


def _command(value: object, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(field, "expected a list of strings")
    return tuple(value)


def _resources(value: object, where: str) -> Resources:
    if not isinstance(value, dict):
        raise _bad(where, "expected an object")
    unknown = set(value) - {"cpus", "memory", "gpus", "nodes", "walltime"}
    if unknown:
        raise _bad(f"{where}.{sorted(unknown)[0]}", "unknown resource")
    cpus = _opt(value, "cpus", float, where)
    return Resources(
        cpus=1.0 if cpus is None else cpus,
        memory=_opt(value, "memory", int, where) or 0,
        gpus=_opt(value, "gpus", int, where) or 0,
        nodes=_opt(value, "nodes", int, where) or 1,
        walltime=_opt(value, "walltime", float, where),
    )


def _retry(value: object, where: str) -> RetryPolicy:
    if not isinstance(value, dict):
        raise _bad(where, "expected an object")
    default = RetryPolicy()
    backoff = _opt(value, "backoff", float, where)
    max_backoff = _opt(value, "max_backoff", float, where)
    return RetryPolicy(
        retries=_opt(value, "retries", int, where) or 0,
        backoff=default.backoff if backoff is None else backoff,
        max_backoff=default.max_backoff if max_backoff is None else max_backoff,
    )
