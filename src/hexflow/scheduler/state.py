"""The facility policy's input kept across passes, changed by events: ``PolicyState``.

Owns the cluster and what runs on it (``Capacity``), the queue in policy order
(``QueueOrder``) and the projects' decayed usage. Events (``submit``, ``remove``,
``started``, ``finished``, ``set_node``, ``set_cluster``, ``set_usage``) update them in
time proportional to what changed; ``decide(now)`` runs one pass and changes nothing.
Invariant: ``decide(now)`` equals ``policy.decide(*snapshot(), now, config)``, the
stateless pass on the same input. Pure: no clock (``now`` is an argument), no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hexflow.scheduler.admission import Limits, limits
from hexflow.scheduler.capacity import Capacity
from hexflow.scheduler.cluster import Cluster, Node
from hexflow.scheduler.decisions import Decision, PendingTask, PolicyConfig, RunningTask
from hexflow.scheduler.ordering import QueueOrder
from hexflow.scheduler.passes import Pass
from hexflow.scheduler.preemption import Victims

Snapshot = tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]]


class PolicyState:
    """Cluster, running work, queue and usage, kept for passes (see the module doc).

    The caller applies what it does with the decisions as events: a ``Start`` becomes
    ``started(RunningTask(...))`` (which also takes the task off the queue), a ``Reject``
    ``remove``, a preempted task's end ``finished`` (and ``submit`` to requeue it). The
    methods are those of the replay's ``PoolPolicy``, so the state plugs in there.
    """

    def __init__(
        self,
        cluster: Cluster,
        config: PolicyConfig | None = None,
        usage: Mapping[str, float] | None = None,
        running: Iterable[RunningTask] = (),
    ) -> None:
        self.config = config or PolicyConfig()
        self.capacity = Capacity(cluster, running)
        self.order = QueueOrder(self.config)
        self.order.set_usage(usage or {})
        self._victims: Victims | None = None
        self._limits: Limits | None = None

    @classmethod
    def of(
        cls,
        cluster: Cluster,
        queue: Iterable[PendingTask],
        running: Iterable[RunningTask],
        usage: Mapping[str, float],
        config: PolicyConfig | None = None,
    ) -> PolicyState:
        """A state holding exactly this input (the queue in this order; ids unique)."""
        state = cls.transient(cluster, queue, running, usage, config)
        state.order.entries  # noqa: B018 -- index the queue by id now: refuses duplicates
        return state

    @classmethod
    def transient(
        cls,
        cluster: Cluster,
        queue: Iterable[PendingTask],
        running: Iterable[RunningTask],
        usage: Mapping[str, float],
        config: PolicyConfig | None = None,
    ) -> PolicyState:
        """Like ``of``, for one pass: the queue is indexed by id only if an event needs it."""
        state = cls(cluster, config, usage, running)
        state.order.extend(queue)
        return state

    # -- events -----------------------------------------------------------------------

    def submit(self, task: PendingTask) -> None:
        """Queue ``task`` last in queue position (replacing a queued task of that id)."""
        self.order.add(task)

    def remove(self, task_id: str) -> None:
        """Take a queued task off the queue (cancelled, rejected); unknown ids are ignored."""
        self.order.remove(task_id)

    def started(self, task: RunningTask) -> None:
        """``task`` runs now: off the queue, its slots held (replacing one of that id)."""
        self.order.remove(task.task_id)
        old = self.capacity.running.get(task.task_id)
        touched = self.capacity.start(task)
        if self._victims is not None and (
            task.may_be_preempted or (old is not None and old.may_be_preempted)
        ):
            for i in touched:
                self._victims.update(i)

    def finished(self, task_id: str) -> None:
        """A running task ended (or stopped); unknown ids are ignored."""
        task = self.capacity.running.get(task_id)
        if task is None:
            return
        touched = self.capacity.end(task_id)
        if self._victims is not None and task.may_be_preempted:
            for i in touched:
                self._victims.update(i)

    def set_node(self, node: Node) -> None:
        """A node changed (state, leave time or size); it must exist (see ``set_cluster``)."""
        self.capacity.set_node(node)
        self._victims = None
        self._limits = None

    def set_cluster(self, cluster: Cluster) -> None:
        """A new cluster (nodes added or removed); what runs is kept."""
        self.capacity.set_cluster(cluster)
        self._victims = None
        self._limits = None

    def set_usage(self, usage: Mapping[str, float]) -> None:
        """The projects' decayed usage (see ``decisions.decay_usage``)."""
        self.order.set_usage(usage)

    # -- the pass ---------------------------------------------------------------------

    def decide(self, now: float) -> list[Decision]:
        """The decisions of one pass at ``now``; the state is not changed."""
        if self._limits is None:
            self._limits = limits(self.capacity.nodes)
        decision_pass = Pass(
            self.order, self.capacity, self._victims, self._limits, now, self.config
        )
        decisions = decision_pass.run()
        self._victims = decision_pass.victims  # built on first use, then kept up to date
        return decisions

    # -- views ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.order)

    def queued(self, task_id: str) -> PendingTask | None:
        return self.order.entries.get(task_id)

    def running(self, task_id: str) -> RunningTask | None:
        return self.capacity.running.get(task_id)

    def running_ids(self) -> list[str]:
        """Ids of the running tasks, in start order."""
        return list(self.capacity.running)

    def snapshot(self) -> Snapshot:
        """The equivalent stateless input: (cluster, queue, running, usage)."""
        return (
            self.capacity.cluster,
            self.order.queue(),
            list(self.capacity.running.values()),
            dict(self.order.usage),
        )


__all__ = ["PolicyState", "Snapshot"]
