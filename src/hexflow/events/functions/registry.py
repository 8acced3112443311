"""FunctionRegistry: register functions (a new version each time), look them up, and check
a call's arguments against the JSON Schema of the version called.

Registration loads the function in a throw-away subprocess (``inspect_main``) to read its
signature: the server never runs a project's code. The schema is stored with the version;
calls are checked against it here (jsonschema), so a bad call is a 422 naming the field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from hexflow.errors import NotFound, SpecError
from hexflow.model.functions import FunctionDef, SourceKind, check_function_fields
from hexflow.model.qos import QoS
from hexflow.store import functions_sql
from hexflow.store.service_db import ServiceDb

INSPECT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Registration:
    """What a caller asks to register (validated by ``register``)."""

    name: str
    import_path: str | None = None
    source: str | None = None
    entrypoint: str | None = None  # the function the source defines (default: the name)
    env: dict[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    memory: int | None = None
    timeout: float = 60.0
    min_workers: int = 1
    max_workers: int = 4
    qos: str | None = None  # QoS of the workflows it submits for events (None: urgent)


class FunctionRegistry:
    def __init__(
        self, db: ServiceDb, clock: Callable[[], float] = time.time, cwd: str | None = None
    ) -> None:
        self._db = db
        self._now = clock
        self._cwd = cwd
        self._lock = threading.Lock()
        self._newest: dict[tuple[str, str], FunctionDef] = {}  # (project, name) -> newest
        self._validators: dict[tuple[str, str, int], Draft202012Validator] = {}

    def register(self, project: str, reg: Registration, *, user: str) -> FunctionDef:
        if (reg.import_path is None) == (reg.source is None):
            raise SpecError(
                "give either import_path or source",
                hint='e.g. {"name": "add", "import_path": "mypkg.fns:add"}',
                field="import_path",
            )
        kind = SourceKind.IMPORT if reg.import_path is not None else SourceKind.SOURCE
        target = reg.import_path or reg.entrypoint or reg.name
        check_function_fields(
            name=reg.name,
            kind=kind,
            target=target,
            source=reg.source,
            env=reg.env,
            cpus=reg.cpus,
            timeout=reg.timeout,
            min_workers=reg.min_workers,
            max_workers=reg.max_workers,
            qos=reg.qos,
        )
        schema = self._inspect(kind, target, reg.source, f"{project}.{reg.name}")
        with self._db.write() as conn:
            version = functions_sql.next_version(conn, project, reg.name)
            fn = FunctionDef(
                project=project,
                name=reg.name,
                version=version,
                kind=kind,
                target=target,
                source=reg.source,
                schema=schema,
                env=dict(reg.env),
                cpus=reg.cpus,
                memory=reg.memory,
                timeout=reg.timeout,
                min_workers=reg.min_workers,
                max_workers=reg.max_workers,
                created_at=self._now(),
                created_by=user,
                qos=QoS.parse(reg.qos).value if reg.qos else None,
            )
            functions_sql.insert_function(conn, fn)
        with self._lock:
            self._newest[(project, fn.name)] = fn
        return fn

    def _inspect(
        self, kind: SourceKind, target: str, source: str | None, name: str
    ) -> dict[str, Any]:
        spec = json.dumps({"kind": kind.value, "target": target, "source": source, "name": name})
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "hexflow.events.functions.inspect_main"],
                input=spec,
                capture_output=True,
                text=True,
                timeout=INSPECT_TIMEOUT,
                env=env,
                cwd=self._cwd,
            )
            out = json.loads(done.stdout or "{}")
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            raise SpecError(f"could not load the function to read its signature: {exc}") from None
        if "error" in out:
            raise SpecError(
                f"cannot register {name}: {out['error']}",
                hint="the import path must be importable by the server's Python, and the "
                "function must take keyword arguments with JSON-compatible type hints",
                field=out.get("field"),
            )
        schema: dict[str, Any] = out["schema"]
        return schema

    def get(self, project: str, name: str, version: int | None = None) -> FunctionDef:
        if version is None:
            with self._lock:
                known = self._newest.get((project, name))
            if known is not None:
                return known
        with self._db.read() as conn:
            fn = functions_sql.get_function(conn, project, name, version)
        if fn is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(
                f"no {which}function {name!r} in project {project!r}",
                hint="`hexflow functions list` shows the registered functions",
                function=name,
            )
        if version is None:
            with self._lock:
                self._newest[(project, name)] = fn
        return fn

    def forget(self, project: str, name: str) -> None:
        """Drop the cached newest version (another server registered a new one)."""
        with self._lock:
            self._newest.pop((project, name), None)

    def list_functions(self, projects: Collection[str]) -> list[FunctionDef]:
        with self._db.read() as conn:
            return functions_sql.list_functions(conn, projects)

    def check_args(self, fn: FunctionDef, args: Any) -> None:
        """SpecError naming the argument at fault (``args.x``) when ``args`` do not fit."""
        if not isinstance(args, dict):
            raise SpecError(
                f"the arguments must be a JSON object, not {type(args).__name__}",
                hint='send them by name, e.g. {"x": 1}',
                field="args",
            )
        key = (fn.project, fn.name, fn.version)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = Draft202012Validator(fn.schema)
        error = next(iter(validator.iter_errors(args)), None)
        if error is None:
            return
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [r for r in error.validator_value if r not in error.instance]
            path += missing[:1]
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            path += [k for k in error.instance if k not in allowed][:1]
        raise SpecError(
            f"bad argument{' ' + '.'.join(path) if path else 's'} for {fn.name}: {error.message}",
            hint=f"{fn.name} takes: {', '.join(fn.schema.get('properties', {})) or 'no arguments'}",
            field=".".join(["args", *path]),
        )
