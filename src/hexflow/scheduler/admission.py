"""Admission: which queued tasks the facility refuses outright, each with its reason.

A task is refused when its deadline cannot be met even if started now (unless
``best_effort``), or when it asks for more nodes than are not down, or per node for more
than the largest node that is not down has. A gang with a refused member is refused whole.
Refusals are recomputed every pass (a refused task stays queued until the caller removes
it); only deadline tasks and shapes are examined, not the whole queue, unless some shape
is refused. Pure: ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable

from hexflow.scheduler.cluster import Node, NodeState
from hexflow.scheduler.decisions import PendingTask, PolicyConfig, Reject, Shape
from hexflow.scheduler.ordering import DEAD, QueueOrder

# (nodes not down, (largest cpus, gpus, memory) among them)
Limits = tuple[int, tuple[float, int, int]]


def limits(nodes: Iterable[Node]) -> Limits:
    up = [n for n in nodes if n.state is not NodeState.DOWN]
    most = (
        max((n.cpus for n in up), default=0.0),
        max((n.gpus for n in up), default=0),
        max((n.memory for n in up), default=0),
    )
    return len(up), most


def too_large(shape: Shape, limits: Limits) -> bool:
    cpus, gpus, memory, count, exclusive = shape
    nodes_up, (most_cpus, most_gpus, most_memory) = limits
    return count > nodes_up or (
        not exclusive and (cpus > most_cpus or gpus > most_gpus or memory > most_memory)
    )


def refusal(task: PendingTask, now: float, config: PolicyConfig, limits: Limits) -> str | None:
    """Why ``task`` is refused now, or None."""
    end = now + task.walltime
    deadline = task.deadline
    if config.admission and deadline is not None and end > deadline and not task.best_effort:
        return (
            f"deadline {deadline:g} cannot be met: started now ({now:g}) with walltime "
            f"{task.walltime:g} s it ends at {end:g}; submit with best_effort to run it anyway"
        )
    r = task.resources
    nodes_up, most = limits
    if r.nodes > nodes_up:
        return f"asks for {r.nodes} nodes; the cluster has {nodes_up} that are not down"
    if not task.exclusive and (r.cpus > most[0] or r.gpus > most[1] or r.memory > most[2]):
        return f"asks per node for {r.describe()}; no node that is not down is that large"
    return None


def rejections(
    order: QueueOrder, now: float, config: PolicyConfig, limits: Limits
) -> tuple[list[Reject], set[str], set[int]]:
    """The pass's rejections in queue order, the refused task ids and refused shape ids.

    Refused tasks come in queue order, then the other members of gangs with a refused
    member (the reason names the member).
    """
    bad_shapes = {
        sid
        for sid, shape in enumerate(order.shapes)
        if shape is not None and order.shape_count[sid] and too_large(shape, limits)
    }
    refused: list[tuple[int, PendingTask]] = []
    noted = order.noted  # the seq of every deadline task and gang member
    if bad_shapes:
        sid_of = order.shape_ids
        for buckets in order.buckets.values():
            for bucket in buckets.values():
                for task, seq, sid in zip(bucket.tasks, bucket.seqs, bucket.sids, strict=True):
                    if sid != DEAD and sid_of[task.shape] in bad_shapes:
                        refused.append((seq, task))
    if config.admission:
        for task_id, task in order.deadlines.items():
            assert task.deadline is not None
            if now + task.walltime > task.deadline and not (
                bad_shapes and order.shape_ids[task.shape] in bad_shapes  # already refused
            ):
                refused.append((noted[task_id], task))
    if not refused:
        return [], set(), bad_shapes
    refused.sort(key=lambda e: e[0])
    decisions: list[Reject] = []
    ids: set[str] = set()
    bad_gangs: dict[str, str] = {}
    for _, task in refused:
        reason = refusal(task, now, config, limits)
        assert reason is not None
        decisions.append(Reject(task.task_id, reason))
        ids.add(task.task_id)
        if task.gang is not None:
            bad_gangs.setdefault(task.gang, f"gang {task.gang}: member {task.task_id}: {reason}")
    if bad_gangs:
        members = sorted(
            (noted[t.task_id], t)
            for gang in bad_gangs
            for t in order.gangs[gang].values()
            if t.task_id not in ids
        )
        for _, task in members:
            assert task.gang is not None
            decisions.append(Reject(task.task_id, bad_gangs[task.gang]))
            ids.add(task.task_id)
    return decisions, ids, bad_shapes


__all__ = ["Limits", "limits", "refusal", "rejections", "too_large"]
