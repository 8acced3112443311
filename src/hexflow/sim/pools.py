"""One pool during a facility replay: its nodes, queue, running work, policy and accounting.

Mutable, owned by the replay loop (``hexflow.sim.facility``); pure otherwise. Every change
here is also told to the pool's ``PoolPolicy``. Invariants: ``held[node]`` is the cpus
running work holds there (a whole node for exclusive work) and never exceeds the node;
``free_up`` is the free cpus summed over UP nodes, so a pass can be skipped at once when it
is zero; a queued task wider than the pool's nodes that are not down is withheld from the
policy (which would reject it) until the pool is wide enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hexflow.scheduler.cluster import Cluster, Node, NodeState, Slot
from hexflow.scheduler.decisions import PendingTask, RunningTask
from hexflow.sim.seam import PolicyFactory, PoolPolicy


class PoolState:
    def __init__(self, name: str, nodes: Iterable[Node], factory: PolicyFactory) -> None:
        self.name = name
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        self.policy: PoolPolicy = factory(name, self._cluster())
        self.queue: dict[str, PendingTask] = {}  # arrival order, withheld ones included
        self.withheld: set[str] = set()
        self.running: dict[str, RunningTask] = {}
        self.held: dict[str, float] = {}  # node -> cpus held by running work
        self.holders: dict[str, int] = {}  # node -> running tasks there
        self.free_up = self._free_up()
        self.width = self.not_down()  # the widest task the pool can run now
        self.dirty = False  # something changed since the last pass
        self.deficit = 0  # nodes the plan wants here that no one could give yet
        # accounting
        self.node_seconds = 0.0
        self.busy_core_seconds = 0.0
        self.fewest = self.most = len(self.nodes)  # nodes held, over the replay
        self.started = 0
        self.wait_sum = 0.0

    # -- nodes ------------------------------------------------------------------------

    def _cluster(self) -> Cluster:
        return Cluster.single_pool(self.nodes.values(), pool=self.name)

    def _free_up(self) -> float:
        return sum(
            n.cpus - self.held.get(n.name, 0.0)
            for n in self.nodes.values()
            if n.state is NodeState.UP
        )

    def not_down(self) -> int:
        return sum(1 for n in self.nodes.values() if n.state is not NodeState.DOWN)

    def set_nodes(self, nodes: Iterable[Node]) -> None:
        """The pool's nodes now (after a resize); withholds or releases wide tasks."""
        self.nodes = {n.name: n for n in nodes}
        self.policy.set_cluster(self._cluster())
        self.free_up = self._free_up()
        self.dirty = True
        size = len(self.nodes)
        self.fewest, self.most = min(self.fewest, size), max(self.most, size)
        self.width = width = self.not_down()
        for task in self.queue.values():
            fits = task.resources.nodes <= width
            if fits and task.task_id in self.withheld:
                self.withheld.discard(task.task_id)
                self.policy.submit(task)
            elif not fits and task.task_id not in self.withheld:
                self.withheld.add(task.task_id)
                self.policy.remove(task.task_id)

    # -- work -------------------------------------------------------------------------

    def enqueue(self, task: PendingTask) -> None:
        self.queue[task.task_id] = task
        if task.resources.nodes <= self.width:
            self.policy.submit(task)
        else:
            self.withheld.add(task.task_id)
        self.dirty = True

    def reject(self, task_id: str) -> None:
        del self.queue[task_id]
        self.policy.remove(task_id)

    def start(self, task_id: str, nodes: tuple[str, ...], now: float) -> PendingTask:
        """Start queued ``task_id`` on ``nodes`` (as the policy decided); the task."""
        task = self.queue.pop(task_id)
        slots: list[Slot] = []
        for name in nodes:
            cpus = self.nodes[name].cpus if task.exclusive else task.resources.cpus
            slots.append(Slot(name, cpus, exclusive=task.exclusive))
            self.held[name] = self.held.get(name, 0.0) + cpus
            self.holders[name] = self.holders.get(name, 0) + 1
            if self.held[name] > self.nodes[name].cpus + 1e-9:  # a policy bug, not user error
                raise AssertionError(f"over-allocation of {name} at t={now}")
            self.free_up -= cpus
        running = RunningTask(
            task.task_id, tuple(slots), now, now + task.walltime, task.qos, preemptible=False
        )
        self.running[task.task_id] = running
        self.policy.started(running)
        self.started += 1
        self.wait_sum += now - task.submit_time
        return task

    def finish(self, task_id: str, now: float) -> tuple[float, bool]:
        """End a running task: (core-seconds it held, whether a DRAINING node became idle)."""
        task = self.running.pop(task_id)
        self.policy.finished(task_id)
        freed_draining = False
        cores = 0.0
        for slot in task.slots:
            name = slot.node
            cores += slot.cpus
            self.held[name] -= slot.cpus
            self.holders[name] -= 1
            if not self.holders[name]:
                del self.held[name], self.holders[name]
            state = self.nodes[name].state
            if state is NodeState.UP:
                self.free_up += slot.cpus
            elif state is NodeState.DRAINING and name not in self.holders:
                freed_draining = True
        spent = cores * (now - task.started)
        self.busy_core_seconds += spent
        self.dirty = True
        return spent, freed_draining

    def set_usage(self, usage: Mapping[str, float]) -> None:
        self.policy.set_usage(usage)


__all__ = ["PoolState"]
