"""Why each queued task waits: the facility policy's decisions, put in words.

Pure, like the policy: the same cluster, queue, running work, usage and ``now`` that a
pass takes give one reason per queued task, derived from that pass's decisions. Kinds (the
first word, stable for scripts): ``starting`` (the next pass starts it), ``preempting``
(waits for preempted tasks to stop), ``reservation`` (holds nodes from a time, or would
delay another task's reservation if started now), ``resources`` (does not fit what is free),
``priority`` (waits behind higher-priority work, strict order), ``rejected``; a task that
cannot end by its deadline any more also says ``deadline at risk``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hexflow.scheduler.cluster import Cluster, FreeNodes
from hexflow.scheduler.decisions import (
    PendingTask,
    PolicyConfig,
    Preempt,
    Reject,
    Reserve,
    RunningTask,
    Start,
)
from hexflow.scheduler.policy import decide, priority_order


@dataclass(frozen=True, slots=True)
class WaitReason:
    task_id: str
    kind: str  # starting | preempting | reservation | resources | priority | rejected
    text: str
    at_risk: bool = False

    def __str__(self) -> str:
        return self.text + ("; deadline at risk" if self.at_risk else "")


def wait_reasons(
    cluster: Cluster,
    queue: Sequence[PendingTask],
    running: Sequence[RunningTask],
    usage: Mapping[str, float],
    now: float,
    config: PolicyConfig | None = None,
) -> list[WaitReason]:
    """One reason per queued task, in the order the policy considers the queue."""
    config = config or PolicyConfig()
    decisions = decide(cluster, queue, running, usage, now, config)
    table = FreeNodes(cluster, (s for r in running for s in r.slots))
    free = [
        (table.free_cpus[i], table.free_gpus[i], table.free_memory[i])
        for i in range(len(table))
        if table.usable[i] and not table.exclusive[i]
    ]
    started: set[str] = set()
    reserved: dict[str, Reserve] = {}
    rejected: dict[str, str] = {}
    preempting: dict[str, int] = {}
    victims = 0
    head: str | None = None
    for d in decisions:
        if isinstance(d, Start):
            started.add(d.task_id)
        elif isinstance(d, Reject):
            rejected[d.task_id] = d.reason
        elif isinstance(d, Preempt):
            victims += 1
        elif isinstance(d, Reserve):
            reserved[d.task_id] = d
            if victims:
                preempting[d.task_id], victims = victims, 0
            elif head is None:
                head = d.task_id
    reasons: dict[str, WaitReason] = {}
    for task_id, why in rejected.items():
        reasons[task_id] = WaitReason(task_id, "rejected", f"rejected: {why}")
    blocker: PendingTask | None = None  # the first task in order that did not start
    kept = [t for t in queue if t.task_id not in rejected]
    for task in priority_order(kept, usage, config):
        tid = task.task_id
        risk = task.deadline is not None and now + task.walltime > task.deadline
        if tid in started:
            reasons[tid] = WaitReason(tid, "starting", "starting: fits now", risk)
            continue
        if tid in preempting:
            n = preempting[tid]
            reasons[tid] = WaitReason(
                tid,
                "preempting",
                f"preempting: waits for {n} preempt-class task{'s' * (n != 1)} to "
                f"checkpoint and stop (grace {config.preempt_grace:g} s)",
                reserved[tid].at_risk or risk,
            )
        elif tid in reserved:
            r = reserved[tid]
            reasons[tid] = WaitReason(
                tid,
                "reservation",
                f"reservation: holds {', '.join(r.nodes)} in {max(r.at - now, 0):.0f} s",
                r.at_risk or risk,
            )
        elif _fits_somewhere(task, free):
            if head is not None and config.backfill:
                text = (
                    "reservation: starting now would delay an earlier task's reservation"
                    if config.backfill_mode == "conservative"
                    else f"reservation: starting now would delay {head}'s reservation"
                )
                reasons[tid] = WaitReason(tid, "reservation", text, risk)
            else:
                ahead = blocker.task_id if blocker is not None else "the queue's head"
                text = f"priority: waits behind {ahead} (strict order)"
                reasons[tid] = WaitReason(tid, "priority", text, risk)
        else:
            reasons[tid] = WaitReason(
                tid,
                "resources",
                f"resources: needs {task.resources.describe()} per node; {_free_text(free)}",
                risk,
            )
        if blocker is None:
            blocker = task
    order = {t.task_id: k for k, t in enumerate(priority_order(kept, usage, config))}
    return sorted(reasons.values(), key=lambda r: order.get(r.task_id, -1))


def _fits_somewhere(task: PendingTask, free: list[tuple[float, int, int]]) -> bool:
    r = task.resources
    fitting = sum(1 for c, g, m in free if c >= r.cpus and g >= r.gpus and m >= r.memory)
    return fitting >= r.nodes


def _free_text(free: list[tuple[float, int, int]]) -> str:
    if not free:
        return "no node can take new work now"
    most = max(free)
    return f"largest free now: cpus={most[0]:g} gpus={most[1]}"


__all__ = ["WaitReason", "wait_reasons"]
