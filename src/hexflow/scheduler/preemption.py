"""Victim choice for preemption: which ``preempt``-class tasks make room for urgent work.

Only running tasks of QoS ``preempt`` that are marked preemptible are ever chosen. Per node,
the most recently started victims go first (they lose the least work); nodes are ranked
by how many preemptible tasks they hold, then by how recent those are, then by cluster
order (``Victims``, kept across passes). Reserved nodes are never used, so no reservation
is delayed.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from hexflow.scheduler.capacity import Capacity
from hexflow.scheduler.cluster import FreeNodes, Slot
from hexflow.scheduler.decisions import PendingTask, RunningTask, Shape

# (started, task id, cpus, gpus, memory, whole node): one victim's hold on one node
Victim = tuple[float, str, float, int, int, bool]


class Victims:
    """Preemptible running work per node and the node ranking, kept across passes.

    Nodes are ranked by how many victims they hold, then how recently the latest started,
    then cluster order; on each node the most recently started victims come first.
    """

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        table = capacity.table
        on_node: dict[int, list[Victim]] = {}
        for r in capacity.running.values():
            if not r.may_be_preempted:
                continue
            for s in r.slots:
                i = table.index.get(s.node)
                if i is not None:
                    on_node.setdefault(i, []).append(_victim(table, i, r, s))
        for victims in on_node.values():
            victims.sort(key=_recent_first)
        self.on_node = on_node
        # Upper bounds of the room on each node once all its victims are gone.
        self.sums = {i: sum(v[2] for v in victims) for i, victims in on_node.items()}
        self.keys = sorted(_rank(i, victims) for i, victims in on_node.items())
        self.order = [key[2] for key in self.keys]

    def update(self, i: int) -> None:
        """Node ``i``'s preemptible work changed: recompute it and its rank."""
        old = self.on_node.pop(i, None)
        if old is not None:
            k = bisect.bisect_left(self.keys, _rank(i, old))
            del self.keys[k], self.order[k]
            del self.sums[i]
        table = self.capacity.table
        victims = [
            _victim(table, i, r, s) for r, s in self.capacity.held_on(i) if r.may_be_preempted
        ]
        if victims:
            victims.sort(key=_recent_first)
            self.on_node[i] = victims
            self.sums[i] = sum(v[2] for v in victims)
            key = _rank(i, victims)
            k = bisect.bisect_left(self.keys, key)
            self.keys.insert(k, key)
            self.order.insert(k, i)


def _victim(table: FreeNodes, i: int, r: RunningTask, s: Slot) -> Victim:
    if s.exclusive:
        return (
            r.started,
            r.task_id,
            table.cap_cpus[i],
            table.cap_gpus[i],
            table.cap_memory[i],
            True,
        )
    return (r.started, r.task_id, s.cpus, s.gpus, s.memory, False)


def _recent_first(v: Victim) -> tuple[float, str]:
    return (-v[0], v[1])


def _rank(i: int, victims: list[Victim]) -> tuple[int, float, int]:
    return (len(victims), -victims[0][0], i)


class VictimIndex:
    """One pass's view of the victims: which nodes each request already found useless."""

    def __init__(self, table: FreeNodes, victims: Victims) -> None:
        self.table = table
        self.on_node = victims.on_node
        self.sums = victims.sums
        self.order = victims.order
        # shape -> (positions in ``order`` not yet found useless for such a task, how far
        # its scan of ``reachable`` got). A node only loses room during a pass, so one that
        # failed a shape fails it again: each node is tried once per shape (one that only
        # leaves too soon is kept: a shorter task may still use it).
        self.scans: dict[Shape, tuple[list[int], int]] = {}
        # (whole node, cpus) -> positions in ``order`` of the nodes that, when first
        # asked, could make that room at all (free + all victims; no other holder)
        self.reachable: dict[tuple[bool, float], list[int]] = {}
        self.preempted: set[str] = set()

    def _reachable(self, exclusive: bool, cpus: float) -> list[int]:
        found = self.reachable.get((exclusive, cpus))
        if found is None:
            on_node, sums = self.on_node, self.sums
            free_cpus, holders = self.table.free_cpus, self.table.holders
            found = self.reachable[exclusive, cpus] = [
                position
                for position, i in enumerate(self.order)
                if not (exclusive and len(on_node[i]) != holders[i])
                and cpus <= free_cpus[i] + sums[i]
            ]
        return found

    def choose(
        self, task: PendingTask, reserved: Mapping[int, object], at: float
    ) -> tuple[list[int], list[str]] | None:
        """Nodes for ``task`` at ``at`` and the victims to preempt there; None if impossible.

        Greedy over the node ranking: the first nodes where preempting the most recent
        victims makes room. Nodes reserved for the EASY head are never used.
        """
        count = task.resources.nodes
        end = at + task.walltime
        key = task.shape
        viable, resume = self.scans.get(key, ([], 0))
        order = self.order
        kept: list[int] = []
        chosen_nodes: list[int] = []
        chosen: list[str] = []

        cpus, exclusive = task.resources.cpus, task.exclusive
        on_node, sums = self.on_node, self.sums
        free_cpus, holders, leaves_at = (
            self.table.free_cpus,
            self.table.holders,
            self.table.leaves_at,
        )

        def take(position: int) -> bool:
            """Try one node; True once the task has all its nodes."""
            i = order[position]
            # Quick refusals, exact as bounds: room never exceeds free + all victims, and
            # a node with other holders cannot be emptied.
            if (exclusive and len(on_node[i]) != holders[i]) or cpus > free_cpus[i] + sums[i]:
                return False
            if leaves_at[i] < end:
                kept.append(position)
                return False
            victims = self._room(i, task.shape, reserved)
            if victims is None:
                return False  # useless for this key from now on
            kept.append(position)
            if victims:
                chosen_nodes.append(order[position])
                chosen.extend(v for v in victims if v not in chosen)
            return len(chosen_nodes) == count

        done = False
        k = 0
        while k < len(viable) and not done:
            done = take(viable[k])
            k += 1
        kept.extend(viable[k:])
        usable = self.table.usable
        reachable = self._reachable(exclusive, cpus)
        position, n = resume, len(reachable)
        while position < n and not done:
            p = reachable[position]
            i = order[p]
            position += 1
            # the quick refusals of ``take``, inline: most nodes of a first scan fail them
            if (
                not usable[i]  # set aside for an earlier task
                or (exclusive and len(on_node[i]) != holders[i])
                or cpus > free_cpus[i] + sums[i]
            ):
                continue
            done = take(p)
        self.scans[key] = (kept, position)
        if not done:
            return None
        self.preempted.update(chosen)
        return sorted(chosen_nodes), chosen

    def _room(
        self,
        i: int,
        shape: Shape,
        reserved: Mapping[int, object],
    ) -> list[str] | None:
        """The victims that make room for one node of ``shape`` on node ``i``, or None."""
        table = self.table
        if not table.usable[i] or i in reserved:
            return None
        cpus, gpus, memory, _, exclusive = shape
        fc, fg, fm = table.free_cpus[i], table.free_gpus[i], table.free_memory[i]
        holders, held_whole = table.holders[i], table.exclusive[i]
        victims: list[str] = []
        for _, victim, c, g, m, whole in self.on_node[i]:
            if _fits(fc, fg, fm, holders, held_whole, cpus, gpus, memory, exclusive):
                break
            if victim in self.preempted:
                continue  # preempted for another task: not counted free (conservative)
            fc, fg, fm, holders = fc + c, fg + g, fm + m, holders - 1
            held_whole = held_whole and not whole
            victims.append(victim)
        if not _fits(fc, fg, fm, holders, held_whole, cpus, gpus, memory, exclusive):
            return None
        return victims


def _fits(
    fc: float,
    fg: int,
    fm: int,
    holders: int,
    exclusive_held: bool,
    cpus: float,
    gpus: int,
    memory: int,
    exclusive: bool,
) -> bool:
    if exclusive:
        return holders == 0
    return not exclusive_held and fc >= cpus and fg >= gpus and fm >= memory


__all__ = ["VictimIndex", "Victims"]
