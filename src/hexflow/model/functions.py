"""Functions (FaaS) and their invocations: pure records and the invocation state machine.

A function is registered by a project under a name; each registration is a new version
(1, 2, ...) and a call goes to the newest one unless it names another. An invocation moves
QUEUED → RUNNING → SUCCEEDED | FAILED | TIMED_OUT; one found RUNNING after a crash goes
back to QUEUED and runs again (its ``attempt`` counts the runs). Any other move raises
``InvalidTransition``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hexflow.errors import InvalidTransition, SpecError
from hexflow.model.qos import QoS


class InvocationState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in (
            InvocationState.SUCCEEDED,
            InvocationState.FAILED,
            InvocationState.TIMED_OUT,
        )


_I = InvocationState
INVOCATION_TRANSITIONS: dict[InvocationState, frozenset[InvocationState]] = {
    _I.QUEUED: frozenset({_I.RUNNING, _I.FAILED}),
    _I.RUNNING: frozenset({_I.SUCCEEDED, _I.FAILED, _I.TIMED_OUT, _I.QUEUED}),
    _I.SUCCEEDED: frozenset(),
    _I.FAILED: frozenset(),
    _I.TIMED_OUT: frozenset(),
}


class SourceKind(StrEnum):
    IMPORT = "import"  # "package.module:function", importable where the workers run
    SOURCE = "source"  # uploaded Python source text that defines the function


_FUNCTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class FunctionDef:
    project: str
    name: str
    version: int
    kind: SourceKind
    target: str  # the import path, or the name of the function the source defines
    source: str | None = None
    schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema of the arguments
    env: dict[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    memory: int | None = None  # bytes
    timeout: float = 60.0  # seconds one invocation may run
    min_workers: int = 1
    max_workers: int = 4
    created_at: float = 0.0
    created_by: str = ""
    qos: str | None = None  # QoS of workflows it submits for events (None: urgent)

    @property
    def environment(self) -> tuple[Any, ...]:
        """What workers of this function share: functions with equal ones share a pool."""
        return (self.project, tuple(sorted(self.env.items())), self.cpus, self.memory)

    def summary(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "name": self.name,
            "version": self.version,
            "kind": self.kind.value,
            "target": self.target,
            "schema": self.schema,
            "env": dict(self.env),
            "cpus": self.cpus,
            "memory": self.memory,
            "timeout": self.timeout,
            "min_workers": self.min_workers,
            "max_workers": self.max_workers,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "qos": self.qos,
        }

    def submit_qos(self, source: str) -> QoS | None:
        """The QoS of the tasks of workflows it submits during an invocation from
        ``source``: event work (``event:<seq>``) is urgent unless the registration names
        another class; other calls keep what the workflow says (None)."""
        if not source.startswith("event:"):
            return None
        return QoS.parse(self.qos) if self.qos else QoS.URGENT


def check_function_fields(
    *,
    name: str,
    kind: SourceKind,
    target: str,
    source: str | None,
    env: dict[str, str],
    cpus: float,
    timeout: float,
    min_workers: int,
    max_workers: int,
    qos: str | None = None,
) -> None:
    """Raise SpecError (with the field at fault) for a registration that cannot work."""
    if not _FUNCTION_NAME.match(name):
        raise SpecError(
            f"bad function name {name!r}",
            hint="a letter, then letters, digits, '_', '.', '-' (64 at most)",
            field="name",
        )
    if kind is SourceKind.IMPORT:
        if not _IMPORT_PATH.match(target):
            raise SpecError(
                f"bad import path {target!r}",
                hint="write it as package.module:function",
                field="import_path",
            )
        if source is not None:
            raise SpecError("give an import path or source, not both", field="source")
    else:
        if not source or not source.strip():
            raise SpecError("the uploaded source is empty", field="source")
        if not target.isidentifier():
            raise SpecError(
                f"bad entry point {target!r}: the name of a function the source defines",
                field="entrypoint",
            )
    for key, value in env.items():
        if not _ENV_NAME.match(key) or not isinstance(value, str):
            raise SpecError(f"bad environment variable {key!r}", field=f"env.{key}")
    if not 0 < cpus <= 1024:
        raise SpecError(f"cpus must be > 0, got {cpus}", field="cpus")
    if not 0 < timeout <= 24 * 3600:
        raise SpecError(
            f"timeout must be within (0, 86400] seconds, got {timeout}", field="timeout"
        )
    if not 0 <= min_workers <= max_workers or max_workers < 1 or max_workers > 256:
        raise SpecError(
            f"need 0 <= min_workers ({min_workers}) <= max_workers ({max_workers}) <= 256",
            hint="max_workers is at least 1",
            field="max_workers",
        )
    if qos is not None:
        QoS.parse(qos)  # SpecError naming the field "qos"


@dataclass(slots=True)
class Invocation:
    id: str
    project: str
    function: str
    version: int
    state: InvocationState = InvocationState.QUEUED
    args: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    result: Any = None  # JSON value
    error: str | None = None
    traceback: str | None = None
    caller: str = ""  # the user, or "trigger:<id>"
    source: str = "api"  # api | trigger:<id> | event:<seq> | function:<invocation>
    key: str | None = None  # deduplication key: one invocation per key, ever
    attempt: int = 0
    owner: str | None = None  # the server process that runs it

    def set_state(self, new: InvocationState) -> None:
        if new not in INVOCATION_TRANSITIONS[self.state]:
            raise InvalidTransition(
                f"invocation {self.id}: cannot go from {self.state.value} to {new.value}",
                invocation=self.id,
            )
        self.state = new

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "function": self.function,
            "version": self.version,
            "state": self.state.value,
            "args": self.args,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "result": self.result,
            "error": self.error,
            "traceback": self.traceback,
            "caller": self.caller,
            "source": self.source,
            "attempt": self.attempt,
        }
