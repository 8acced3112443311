"""The facility policy: one pure decision pass over a cluster, a queue and what runs now.

Order: QoS class (strict), then earliest deadline inside realtime/urgent, then fair share
(lower decayed project usage first), then submit time, then queue position. Invariants of
the decisions returned: no node is over-allocated; nothing is placed on a down, draining or
set-aside node, nor on one that leaves before the task's walltime ends; no reservation is
delayed by a later start; a gang starts whole or not at all; the same input gives the same
decisions. ``decide`` is the stateless entry point: it builds a ``state.PolicyState`` from
its input and runs one pass (``passes.Pass``); callers that decide often keep the state and
feed it events instead. See docs/scheduler.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hexflow.scheduler.cluster import Cluster
from hexflow.scheduler.decisions import Decision, PendingTask, PolicyConfig, RunningTask
from hexflow.scheduler.ordering import priority_order
from hexflow.scheduler.state import PolicyState


def decide(
    cluster: Cluster,
    queue: Sequence[PendingTask],
    running: Sequence[RunningTask],
    usage: Mapping[str, float],
    now: float,
    config: PolicyConfig | None = None,
) -> list[Decision]:
    """The decisions of one pass: rejects first, then starts, preemptions, reservations.

    Task ids are unique within the queue and within what runs (a task may be in both).
    """
    return PolicyState.transient(cluster, queue, running, usage, config).decide(now)


__all__ = ["decide", "priority_order"]
