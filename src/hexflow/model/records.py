"""Runtime records of runs and tasks: what the store persists and the engine mutates.

A ``TaskRecord`` pairs the immutable spec with the mutable execution state of its latest
attempt. Records change state only through ``set_state``, which goes through the state
machine in ``states``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hexflow.model.spec import TaskSpec
from hexflow.model.states import RunState, TaskState, check_run_transition, check_task_transition


@dataclass(frozen=True, slots=True)
class TaskMove:
    """A task moved from one site to another (``to`` None: it waits for an available site);
    ``attempt``: the attempt that was stopped there, None when it had not started."""

    at: float
    source: str
    to: str | None
    reason: str
    attempt: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "from": self.source,
            "to": self.to,
            "reason": self.reason,
            "attempt": self.attempt,
        }

    @classmethod
    def of(cls, item: dict[str, Any]) -> TaskMove:
        return cls(item["at"], item["from"], item.get("to"), item["reason"], item.get("attempt"))


@dataclass(slots=True)
class TaskRecord:
    run_id: str
    spec: TaskSpec
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    retry_at: float | None = None
    result: bytes | None = None  # serialized return value (python) or None
    exit_code: int | None = None
    reason: str | None = None  # why it ended badly: error, timeout, walltime, ...
    error: str | None = None  # one-line message
    traceback: str | None = None
    root_cause: str | None = None  # for upstream_failed: the task where it started
    cache_key: str | None = None
    cached: bool = False
    worker: str | None = None
    join: str | None = None  # a spawned task whose result becomes this task's result
    preemptions: int = 0  # attempts stopped by preemption (requeued; not retries)
    image: str | None = None  # the container image the latest attempt ran in
    image_digest: str | None = None  # ...and its digest (provenance)
    site: str | None = None  # the site it is queued or runs at (or last ran at)
    moves: tuple[TaskMove, ...] = ()  # its moves between sites, oldest first

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def name(self) -> str:
        return self.spec.name

    def set_state(self, new: TaskState) -> None:
        self.state = check_task_transition(self.spec.id, self.state, new)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view for CLI and API output."""
        return {
            "run_id": self.run_id,
            "task_id": self.spec.id,
            "name": self.spec.name,
            "kind": self.spec.kind.value,
            "state": self.state.value,
            "attempt": self.attempt,
            "deps": list(self.spec.deps),
            "qos": self.spec.qos.value,
            "resources": {
                "cpus": self.spec.resources.cpus,
                "memory": self.spec.resources.memory,
                "gpus": self.spec.resources.gpus,
                "nodes": self.spec.resources.nodes,
                "walltime": self.spec.resources.walltime,
            },
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": (
                self.ended_at - self.started_at
                if self.ended_at is not None and self.started_at is not None
                else None
            ),
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error": self.error,
            "root_cause": self.root_cause,
            "cached": self.cached,
            "worker": self.worker,
            "join": self.join,
            "preemptions": self.preemptions,
            "image": self.image,
            "image_digest": self.image_digest,
            "site": self.site,
            "moves": [m.as_dict() for m in self.moves],
        }


@dataclass(slots=True)
class RunRecord:
    id: str
    name: str
    state: RunState = RunState.PENDING
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    workdir: str = "."
    owner: str | None = None  # "host:pid:create_time" of the process driving the run
    cancel_requested: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def project(self) -> str | None:
        """The project a service run belongs to (``config["project"]``); None when embedded."""
        value = self.config.get("project")
        return value if isinstance(value, str) else None

    def set_state(self, new: RunState) -> None:
        self.state = check_run_transition(self.id, self.state, new)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "name": self.name,
            "state": self.state.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "workdir": self.workdir,
            "owner": self.owner,
        }
