"""Victim choice for preemption: which ``preempt``-class tasks make room for urgent work.

Only running tasks of QoS ``preempt`` that are marked preemptible are ever chosen. Per node,
the most recently started victims go first (they lose the least work); nodes are ranked
once per pass by how many preemptible tasks they hold, then by how recent those are, then
by cluster order. Nodes reserved for the EASY head are never used, so it is not delayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hexflow.scheduler.cluster import FreeNodes
from hexflow.scheduler.decisions import PendingTask, RunningTask


class VictimIndex:
    """Preemptible work per node for one pass; nodes ranked once, fewest victims first."""

    def __init__(self, table: FreeNodes, running: Sequence[RunningTask]) -> None:
        self.table = table
        on_node: dict[int, list[tuple[float, str, float, int, int, bool]]] = {}
        for r in running:
            if not r.may_be_preempted:
                continue
            for s in r.slots:
                i = table.index.get(s.node)
                if i is None:
                    continue
                if s.exclusive:
                    amounts = (table.cap_cpus[i], table.cap_gpus[i], table.cap_memory[i])
                else:
                    amounts = (s.cpus, s.gpus, s.memory)
                on_node.setdefault(i, []).append((r.started, r.task_id, *amounts, s.exclusive))
        for victims in on_node.values():
            victims.sort(key=lambda v: (-v[0], v[1]))  # most recently started first
        self.on_node = on_node
        # Upper bounds of the room on each node once all its victims are gone (a node only
        # loses room during a pass): most requests are ruled out without a closer look.
        self.room_cpus = {
            i: table.free_cpus[i] + sum(v[2] for v in victims) for i, victims in on_node.items()
        }
        self.emptiable = {i for i, victims in on_node.items() if len(victims) == table.holders[i]}
        self.order = sorted(on_node, key=lambda i: (len(on_node[i]), -on_node[i][0][0], i))
        # (shape, walltime) -> (positions in ``order`` not yet found useless for such a
        # task, position where its last scan stopped). A node only loses room during a
        # pass, so one that failed a task fails it again: each node is tried once per key.
        self.scans: dict[
            tuple[tuple[float, int, int, int, bool], float], tuple[list[int], int]
        ] = {}
        self.settled = 0  # every node before this position in ``order`` is set aside
        self.preempted: set[str] = set()

    def choose(
        self, task: PendingTask, reserved: Mapping[int, object], at: float
    ) -> tuple[list[int], list[str]] | None:
        """Nodes for ``task`` at ``at`` and the victims to preempt there; None if impossible.

        Greedy over the node ranking: the first nodes where preempting the most recent
        victims makes room. Nodes reserved for the EASY head are never used.
        """
        count = task.resources.nodes
        end = at + task.walltime
        key = (task.shape, task.walltime)
        viable, resume = self.scans.get(key, ([], 0))
        order = self.order
        kept: list[int] = []
        chosen_nodes: list[int] = []
        chosen: list[str] = []

        cpus, exclusive = task.resources.cpus, task.exclusive
        room_cpus, emptiable = self.room_cpus, self.emptiable

        def take(position: int) -> bool:
            """Try one node; True once the task has all its nodes."""
            i = order[position]
            if (exclusive and i not in emptiable) or cpus > room_cpus[i]:
                return False
            victims = self._room(i, task.shape, end, reserved)
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
        while self.settled < len(order) and not usable[order[self.settled]]:
            self.settled += 1  # set aside for an earlier task: no task can use it again
        position = max(resume, self.settled)
        while position < len(order) and not done:
            done = take(position)
            position += 1
        self.scans[key] = (kept, position)
        if not done:
            return None
        self.preempted.update(chosen)
        return sorted(chosen_nodes), chosen

    def _room(
        self,
        i: int,
        shape: tuple[float, int, int, int, bool],
        end: float,
        reserved: Mapping[int, object],
    ) -> list[str] | None:
        """The victims that make room for one node of ``shape`` on node ``i``, or None."""
        table = self.table
        if not table.usable[i] or table.leaves_at[i] < end or i in reserved:
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


__all__ = ["VictimIndex"]
