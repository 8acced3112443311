"""The task running in this process, as seen from inside it: its id and what it spawned.

A worker enters a context around each Python task. Task functions called during the task
(``@hx.task`` calls inside a task) do not run: they become new tasks, collected here and
sent back with the answer, so the run's DAG grows while it runs. It also holds the
preemption notice the engine may send while the task runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hexflow.model import TaskSpec


@dataclass
class TaskContext:
    task_id: str
    spawned: list[TaskSpec] = field(default_factory=list)
    workflow: Any = None  # the flow layer's collector, created on first spawn


_current: TaskContext | None = None
# Set by the worker's SIGUSR1 handler: the engine asked the running task to stop soon
# (preemption); cleared when the next task enters.
_preempt = {"requested": False}


def current() -> TaskContext | None:
    return _current


def enter(task_id: str) -> TaskContext:
    global _current
    _current = TaskContext(task_id)
    _preempt["requested"] = False
    return _current


def leave() -> None:
    global _current
    _current = None


def request_preemption() -> None:
    _preempt["requested"] = True


def preemption_requested() -> bool:
    return _preempt["requested"]
