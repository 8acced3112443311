"""Task and run state machines: the one place every transition is checked.

A task moves PENDING → READY → (SUBMITTED →) RUNNING → SUCCEEDED, with RETRYING between
failed attempts, and ends FAILED, UPSTREAM_FAILED or CANCELLED. A run ends when all its
tasks are terminal. Any other move raises ``InvalidTransition``.
"""

from __future__ import annotations

from enum import StrEnum

from hexflow.errors import InvalidTransition


class TaskState(StrEnum):
    PENDING = "pending"
    READY = "ready"
    SUBMITTED = "submitted"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TASK_TERMINAL

    @property
    def in_flight(self) -> bool:
        return self in (TaskState.SUBMITTED, TaskState.RUNNING)


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


_TASK_TERMINAL = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED}
)

_T = TaskState
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _T.PENDING: frozenset({_T.READY, _T.UPSTREAM_FAILED, _T.CANCELLED, _T.SUCCEEDED}),
    # READY → SUCCEEDED: a cache hit completes a task without running it; READY → FAILED:
    # the scheduler rejected it (a deadline it cannot meet).
    _T.READY: frozenset(
        {_T.SUBMITTED, _T.RUNNING, _T.SUCCEEDED, _T.FAILED, _T.CANCELLED, _T.PENDING}
    ),
    _T.SUBMITTED: frozenset({_T.RUNNING, _T.READY, _T.FAILED, _T.RETRYING, _T.CANCELLED}),
    # RUNNING → READY: the attempt was lost (crash, preemption) and is requeued.
    _T.RUNNING: frozenset({_T.SUCCEEDED, _T.FAILED, _T.RETRYING, _T.CANCELLED, _T.READY}),
    _T.RETRYING: frozenset({_T.READY, _T.CANCELLED}),
    _T.SUCCEEDED: frozenset(),
    # Terminal failures may be reset to PENDING by an explicit ``resume --retry-failed``.
    _T.FAILED: frozenset({_T.PENDING}),
    _T.UPSTREAM_FAILED: frozenset({_T.PENDING}),
    _T.CANCELLED: frozenset({_T.PENDING}),
}

_R = RunState
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    _R.PENDING: frozenset({_R.RUNNING, _R.CANCELLED}),
    _R.RUNNING: frozenset({_R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.RUNNING}),
    _R.SUCCEEDED: frozenset({_R.RUNNING}),  # the DAG grew after it finished
    _R.FAILED: frozenset({_R.RUNNING}),  # resume --retry-failed
    _R.CANCELLED: frozenset({_R.RUNNING}),
}


def check_task_transition(task_id: str, current: TaskState, new: TaskState) -> TaskState:
    """Return ``new`` if a task may move from ``current`` to it, else raise."""
    if new not in TASK_TRANSITIONS[current]:
        raise InvalidTransition(
            f"task {task_id}: cannot go from {current.value} to {new.value}",
            hint="this is a bug in the caller; allowed next states are "
            + (", ".join(s.value for s in TASK_TRANSITIONS[current]) or "none (terminal)"),
            task=task_id,
            current=current.value,
            new=new.value,
        )
    return new


def check_run_transition(run_id: str, current: RunState, new: RunState) -> RunState:
    """Return ``new`` if a run may move from ``current`` to it, else raise."""
    if new not in RUN_TRANSITIONS[current]:
        raise InvalidTransition(
            f"run {run_id}: cannot go from {current.value} to {new.value}",
            run=run_id,
            current=current.value,
            new=new.value,
        )
    return new
