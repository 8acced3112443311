"""How a Slurm job's end becomes a ``TaskEnded``: its final state, the runner's answer and
what the engine had asked for (cancel, preemption). Pure.

The runner's answer (the same tuple a local worker sends) says what the task did; Slurm's
state says what happened to the job around it. A state that names a cause outside the task
(TIMEOUT, NODE_FAIL, BOOT_FAIL, OUT_OF_MEMORY, PREEMPTED, DEADLINE, CANCELLED) wins over a
failed answer; a successful answer wins over everything. Without an answer, the state alone
decides, and a job that ended COMPLETED or FAILED without one lost its runner.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from hexflow.executors.base import TaskEnded

# Slurm states after which the job is gone for good (the others are queued or running).
ENDED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "BOOT_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "DEADLINE",
        "REVOKED",
    }
)
RUNNING = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"})

_ZERO = pickle.dumps(0)  # a shell task's value is its exit code, as on the local executor


@dataclass(frozen=True)
class Cause:
    """A state that names a cause outside the task: the reason and whether to retry."""

    reason: str
    retryable: bool
    message: str


# TIMEOUT's reason is the task's own limit (timeout or walltime): see ``cause``.
CAUSES = {
    "TIMEOUT": Cause("walltime", True, "Slurm stopped the job at its time limit (TIMEOUT)"),
    "NODE_FAIL": Cause(
        "node_fail", True, "the node running the job failed (NODE_FAIL); it may run elsewhere"
    ),
    "BOOT_FAIL": Cause("node_fail", True, "the job's node failed to boot (BOOT_FAIL)"),
    "OUT_OF_MEMORY": Cause(
        "out_of_memory",
        False,
        "the job used more memory than it asked for (OUT_OF_MEMORY): ask for more memory",
    ),
    "PREEMPTED": Cause(
        "preempted", True, "Slurm preempted the job to make room for higher-priority work"
    ),
    "DEADLINE": Cause("deadline", False, "Slurm could not start the job before its deadline"),
    "CANCELLED": Cause(
        "cancelled", False, "the job was cancelled in Slurm (scancel by a user or an administrator)"
    ),
}


# Reasons a PENDING job gives when it can never start as submitted (Slurm keeps such a job
# queued unless EnforcePartLimits is set): hexflow cancels it and fails the task.
UNRUNNABLE = {
    "PartitionNodeLimit": "it asks for more nodes than its partition has",
    "PartitionTimeLimit": "its time limit is longer than its partition allows",
    "PartitionConfig": "its partition cannot run it (wrong account, QoS or group)",
    "BadConstraints": "its constraints cannot be met by any node",
    "InvalidAccount": "its account is not valid",
    "InvalidQOS": "its QoS is not valid",
    "QOSMaxWallDurationPerJobLimit": "its time limit is longer than its QoS allows",
    "AssocMaxWallDurationPerJobLimit": "its time limit is longer than its account allows",
    "QOSMaxNodePerJobLimit": "it asks for more nodes than its QoS allows",
    "AssocMaxNodesPerJobLimit": "it asks for more nodes than its account allows",
    "QOSMaxGRESPerJob": "it asks for more GPUs than its QoS allows",
}


def unrunnable(token: int, job_id: str, reason: str, now: float) -> TaskEnded:
    """The event for a job that waits for ``reason`` in ``UNRUNNABLE``."""
    return TaskEnded(
        token,
        ok=False,
        ended_at=now,
        reason="launch_failed",
        error=f"Slurm cannot run job {job_id} as submitted: {UNRUNNABLE[reason]} "
        f"(pending reason {reason}); it was cancelled",
        retryable=False,
        extra={"slurm_reason": reason},
    )


def cause(state: str, limit: tuple[float, str] | None) -> Cause | None:
    found = CAUSES.get(state)
    if found is not None and state == "TIMEOUT" and limit is not None:
        return Cause(limit[1], True, f"{found.message}: its {limit[1]} is {limit[0]:g}s")
    return found


def ending(
    token: int,
    state: str,
    answer: tuple[Any, ...] | None,
    *,
    now: float,
    limit: tuple[float, str] | None = None,
    runner_limit: str | None = None,
    requested: str | None = None,
    exit_code: int | None = None,
    signal: int | None = None,
    stderr_tail: str | None = None,
) -> TaskEnded:
    """The event for a job that ended in ``state``.

    ``answer``: the runner's answer tuple, if it wrote one; ``runner_limit``: the time limit
    (``timeout``/``walltime``) the runner enforced; ``requested``: ``cancelled`` or
    ``preempted`` when the engine asked for it; ``exit_code``/``signal``: Slurm's, if known.
    """
    if answer is not None and answer[1]:  # it succeeded: nothing else matters
        return _answered(token, answer, now, limit, None, None, stderr_tail)
    code = answer[7] if answer is not None else exit_code
    if requested is not None:
        message = (
            "cancelled by request"
            if requested == "cancelled"
            else "preempted to make room for higher-priority work"
        )
        return TaskEnded(
            token, ok=False, ended_at=now, exit_code=code, reason=requested, error=message
        )
    found = cause(state, limit)
    if found is not None and not (state == "TIMEOUT" and answer is not None):
        return TaskEnded(
            token,
            ok=False,
            ended_at=now,
            exit_code=code,
            reason=found.reason,
            error=found.message,
            retryable=found.retryable,
            traceback=stderr_tail,
            extra={"slurm_state": state},
        )
    if answer is not None:
        return _answered(token, answer, now, limit, runner_limit, state, stderr_tail)
    described = f"exit code {exit_code}" if exit_code is not None else "no exit code"
    if signal:
        described += f", signal {signal}"
    return TaskEnded(
        token,
        ok=False,
        ended_at=now,
        exit_code=exit_code,
        reason="worker_lost",
        error=f"the Slurm job ended {state} ({described}) without the runner's answer: it "
        "died before the task ended (see the task's stderr log for Slurm's messages)",
        traceback=stderr_tail,
        extra={"slurm_state": state},
    )


def _answered(
    token: int,
    answer: tuple[Any, ...],
    now: float,
    limit: tuple[float, str] | None,
    runner_limit: str | None,
    state: str | None,
    stderr_tail: str | None,
) -> TaskEnded:
    _, ok, blob, err_type, message, tb, _start, code, spawned, join = answer
    extra: dict[str, object] = {"slurm_state": state} if state else {}
    if runner_limit is not None:
        seconds = f" of {limit[0]:g}s" if limit is not None else ""
        return TaskEnded(
            token,
            ok=False,
            ended_at=now,
            exit_code=code,
            reason=runner_limit,
            error=f"killed after exceeding its {runner_limit}{seconds}",
            traceback=stderr_tail,
            extra=extra,
        )
    if err_type is None and code is not None:  # a command ran to its end
        if code == 0:
            return TaskEnded(token, ok=True, ended_at=now, exit_code=0, result=_ZERO)
        error = (
            f"command exited with code {code}"
            if code >= 0
            else f"command was killed by signal {-code}"
        )
        return TaskEnded(
            token,
            ok=False,
            ended_at=now,
            exit_code=code,
            reason="exit_code",
            error=error,
            traceback=stderr_tail,
            extra=extra,
        )
    if ok:
        return TaskEnded(token, ok=True, ended_at=now, result=blob, spawned=spawned, join=join)
    if err_type == "launch_failed":
        return TaskEnded(
            token,
            ok=False,
            ended_at=now,
            exit_code=code,
            reason="launch_failed",
            error=message,
            retryable=False,
            extra=extra,
        )
    return TaskEnded(
        token,
        ok=False,
        ended_at=now,
        result=blob,  # the pickled exception, when it pickles
        reason="error",
        error=message,
        traceback=tb,
        extra={**extra, "error_type": err_type},
    )


def container_answer(
    token: int, state: str, exit_code: int | None, signal: int | None
) -> tuple[tuple[Any, ...], None] | None:
    """An image task's answer as a runner would give it, from Slurm's state and exit code."""
    code = 0 if state == "COMPLETED" else exit_code
    if state != "COMPLETED" and signal:
        code = -signal
    if code is None:
        return None
    return (token, code == 0, None, None, None, None, 0.0, code, None, None), None


__all__ = [
    "CAUSES",
    "ENDED",
    "RUNNING",
    "UNRUNNABLE",
    "Cause",
    "cause",
    "container_answer",
    "ending",
    "unrunnable",
]
