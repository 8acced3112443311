"""What the engine and every executor agree on: launch requests in, events out.

Executors never decide policy: the engine hands them a ``Launch`` when the scheduler has
placed a task, and they report what happened with ``TaskStarted`` and ``TaskEnded``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hexflow.model import Resources, TaskSpec

if TYPE_CHECKING:  # not at run time: workers import this module, and asyncio is slow to load
    import asyncio


@dataclass(slots=True)
class Launch:
    token: int  # engine-chosen handle for this attempt
    run_id: str
    spec: TaskSpec
    attempt: int
    inputs: Mapping[str, bytes]  # upstream results (serialized) by task id
    env: Mapping[str, str]  # HEXFLOW_* variables, checkpoint dir...
    cwd: str
    stdout: str  # log file paths
    stderr: str
    command: tuple[str, ...] | None = None  # resolved argv for shell tasks
    workdir: str = ""  # the run's directory (``cwd`` is it, or a directory the spec names)


@dataclass(slots=True)
class TaskStarted:
    token: int
    worker: str  # where it runs; a tag ``reap`` understands
    started_at: float
    persist: bool = False  # True: the work would outlive the engine; record ``worker``


@dataclass(slots=True)
class TaskEnded:
    token: int
    ok: bool
    ended_at: float
    result: bytes | None = None
    exit_code: int | None = None
    reason: str | None = None  # error, exit_code, timeout, walltime, cancelled, worker_lost
    error: str | None = None
    traceback: str | None = None
    retryable: bool = True
    spawned: bytes | None = None  # pickled TaskSpecs the task created while it ran
    join: str | None = None  # the spawned task whose result becomes this task's result
    extra: dict[str, object] = field(default_factory=dict)


ExecutorEvent = TaskStarted | TaskEnded
Report = Callable[[ExecutorEvent], None]


class Executor(Protocol):
    name: str
    capacity: Resources
    # True when the backend places work itself (a batch system such as Slurm): the engine
    # then only hands tasks over, of any node count, and ``capacity`` bounds how many at once.
    places_work: bool

    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None: ...

    def submit(self, launch: Launch) -> None: ...

    def cancel(self, token: int, reason: str = "cancelled") -> None: ...

    def preempt(self, token: int, grace: float) -> None:
        """Give the task ``grace`` seconds to save its state and stop, then stop it; its end
        is reported with reason ``preempted`` (the engine requeues it)."""
        ...

    def reap(self, worker: str) -> bool:
        """Stop work a previous (crashed) engine left running under the tag ``worker``."""
        ...

    def shutdown(self) -> None: ...

    # Optional: ``withdraw(token) -> bool`` takes back a task the backend has provably not
    # started (and forgets it: no end is reported); the engine moves such a task to another
    # site at once when its site goes down (engine/sites.py). The pilot executor has it.
