"""The seam between the facility replay and the policy: one ``PoolPolicy`` per pool.

The replay tells a pool's policy what happened (a task queued or withdrawn, a task started
or finished, the pool's nodes or the usage changed) and asks it for one pass with
``decide(now)``. ``StatelessPolicy``, the default, keeps the inputs and runs a full
``scheduler.policy.decide`` each pass; an incremental policy state, kept across passes and
updated by the same events, plugs in through a ``PolicyFactory`` without touching the loop.
Invariant a plug-in must keep: ``decide(now)`` returns what ``policy.decide`` returns for
the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from hexflow.scheduler.cluster import Cluster
from hexflow.scheduler.decisions import Decision, PendingTask, PolicyConfig, RunningTask
from hexflow.scheduler.policy import decide


class PoolPolicy(Protocol):
    """The policy of one pool, fed by events. ``usage`` only orders projects."""

    def submit(self, task: PendingTask) -> None: ...

    def remove(self, task_id: str) -> None: ...

    def started(self, task: RunningTask) -> None:
        """``task`` runs now (decided by this policy): it leaves the queue."""

    def finished(self, task_id: str) -> None: ...

    def set_cluster(self, cluster: Cluster) -> None: ...

    def set_usage(self, usage: Mapping[str, float]) -> None: ...

    def decide(self, now: float) -> Sequence[Decision]: ...


# (pool name, its nodes at the start) -> the pool's policy
PolicyFactory = Callable[[str, Cluster], PoolPolicy]


class StatelessPolicy:
    """Keeps the inputs; each pass is a full ``decide`` over them (nothing else kept)."""

    def __init__(self, cluster: Cluster, config: PolicyConfig | None = None) -> None:
        self.cluster = cluster
        self.config = config or PolicyConfig()
        self.queue: dict[str, PendingTask] = {}  # arrival order
        self.running: dict[str, RunningTask] = {}
        self.usage: Mapping[str, float] = {}

    def submit(self, task: PendingTask) -> None:
        self.queue[task.task_id] = task

    def remove(self, task_id: str) -> None:
        self.queue.pop(task_id, None)

    def started(self, task: RunningTask) -> None:
        self.queue.pop(task.task_id, None)
        self.running[task.task_id] = task

    def finished(self, task_id: str) -> None:
        self.running.pop(task_id, None)

    def set_cluster(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def set_usage(self, usage: Mapping[str, float]) -> None:
        self.usage = usage

    def decide(self, now: float) -> Sequence[Decision]:
        return decide(
            self.cluster,
            list(self.queue.values()),
            list(self.running.values()),
            self.usage,
            now,
            self.config,
        )


def stateless(config: PolicyConfig | None = None) -> PolicyFactory:
    """The default factory: a ``StatelessPolicy`` with ``config`` for every pool."""

    def make(pool: str, cluster: Cluster) -> PoolPolicy:
        return StatelessPolicy(cluster, config)

    return make


__all__ = ["PolicyFactory", "PoolPolicy", "StatelessPolicy", "stateless"]
