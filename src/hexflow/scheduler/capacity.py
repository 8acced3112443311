"""Free capacity kept across passes: the node table, updated as work starts and ends.

``Capacity`` owns the cluster as it is now, what runs on it (in start order) and the
``FreeNodes`` table derived from them. Invariant: the table always equals one built afresh
from the cluster and the running work in that order (a changed node is recomputed from its
slots, never patched by subtraction), so a pass on it decides exactly as a pass on fresh
input. Derived indexes (per-node holders, the end-time list) are built on first use and
kept up to date from then on. Pure: no clock, no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from hexflow.scheduler.cluster import Cluster, FreeNodes, Node, Pool, Site, Slot
from hexflow.scheduler.decisions import RunningTask

# (expected end, node index, start order, cpus, gpus, memory): one running slot ending
Ending = tuple[float, int, int, float, int, int]


class Capacity:
    def __init__(self, cluster: Cluster, running: Iterable[RunningTask] = ()) -> None:
        self.running: dict[str, RunningTask] = {}
        self._order: dict[str, int] = {}  # task id -> start order (for ties in ``endings``)
        for task in running:
            if task.task_id in self.running:
                raise ValueError(
                    f"running: task id {task.task_id!r} appears twice; ids must be unique"
                )
            self.running[task.task_id] = task
            self._order[task.task_id] = len(self._order)
        self._next = len(self._order)
        self._load(cluster)

    def _load(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.nodes = list(cluster.nodes())
        self.table = FreeNodes(cluster, (s for r in self.running.values() for s in r.slots))
        self._held: list[dict[str, list[Slot]]] | None = None
        self._endings: list[Ending] | None = None

    # -- events -----------------------------------------------------------------------

    def start(self, task: RunningTask) -> list[int]:
        """Count ``task`` as running (after any running task of the same id is removed).

        Returns the indexes of the nodes whose free capacity changed.
        """
        touched = self.end(task.task_id) if task.task_id in self.running else []
        self.running[task.task_id] = task
        self._order[task.task_id] = self._next
        self._next += 1
        table = self.table
        mine: list[int] = []
        for slot in task.slots:
            i = table.index.get(slot.node)
            if i is None:
                continue  # a node not in the cluster: holds nothing here
            mine.append(i)
            if self._held is not None:
                self._held[i].setdefault(task.task_id, []).append(slot)
            if self._endings is not None:
                bisect.insort(self._endings, self._ending(task, i, slot))
        table_fold = self._held is None
        for i in dict.fromkeys(mine):
            if table_fold:
                self._fold_one(i, task.task_id)
            else:
                self._refold(i)
        return list(dict.fromkeys(touched + mine))

    def end(self, task_id: str) -> list[int]:
        """Forget a running task; returns the indexes of the nodes it held."""
        task = self.running.pop(task_id, None)
        if task is None:
            return []
        order = self._order.pop(task_id)
        held = self._index()
        table = self.table
        touched: list[int] = []
        for slot in task.slots:
            i = table.index.get(slot.node)
            if i is None:
                continue
            touched.append(i)
            held[i].pop(task_id, None)
            if self._endings is not None:
                entry = self._ending(task, i, slot, order)
                k = bisect.bisect_left(self._endings, entry)
                if k < len(self._endings) and self._endings[k] == entry:
                    del self._endings[k]
        for i in dict.fromkeys(touched):
            self._refold(i)
        return list(dict.fromkeys(touched))

    def set_node(self, node: Node) -> int:
        """Replace the node of that name (state, leave time or size); returns its index."""
        i = self.table.index.get(node.name)
        if i is None:
            raise KeyError(
                f"node {node.name!r} is not in the cluster: set_node changes a node that "
                "exists; to add or remove nodes, call set_cluster with the new cluster"
            )
        old = self.nodes[i]
        self.nodes[i] = node
        self.cluster = _replaced(self.cluster, node)
        self._index()
        self._refold(i)
        if (old.cpus, old.gpus, old.memory) != (node.cpus, node.gpus, node.memory):
            self._endings = None  # whole-node holds end with the node's size: rebuild
        return i

    def set_cluster(self, cluster: Cluster) -> None:
        self._load(cluster)

    # -- derived views ----------------------------------------------------------------

    def endings(self) -> list[Ending]:
        """Every running slot on a known node, by (expected end, node, start order)."""
        if self._endings is None:
            index = self.table.index
            order = self._order
            self._endings = sorted(
                self._ending(r, i, s, order[r.task_id])
                for r in self.running.values()
                for s in r.slots
                if (i := index.get(s.node)) is not None
            )
        return self._endings

    def held_on(self, i: int) -> Iterator[tuple[RunningTask, Slot]]:
        """The running work on node ``i``, in start order."""
        running = self.running
        for task_id, slots in self._index()[i].items():
            for slot in slots:
                yield running[task_id], slot

    def open_nodes(self) -> list[int]:
        """Nodes that may take new work now, in cluster order."""
        t = self.table
        usable, whole, free = t.usable, t.exclusive, t.free_cpus
        return [i for i in range(len(t)) if usable[i] and not whole[i] and free[i] > 0]

    def _ending(self, task: RunningTask, i: int, slot: Slot, order: int | None = None) -> Ending:
        t = self.table
        seq = self._order[task.task_id] if order is None else order
        if slot.exclusive:
            return (task.expected_end, i, seq, t.cap_cpus[i], t.cap_gpus[i], t.cap_memory[i])
        return (task.expected_end, i, seq, slot.cpus, slot.gpus, slot.memory)

    def _index(self) -> list[dict[str, list[Slot]]]:
        if self._held is None:
            index = self.table.index
            held: list[dict[str, list[Slot]]] = [{} for _ in self.nodes]
            for r in self.running.values():
                for s in r.slots:
                    i = index.get(s.node)
                    if i is not None:
                        held[i].setdefault(r.task_id, []).append(s)
            self._held = held
        return self._held

    def _refold(self, i: int) -> None:
        held = self._index()[i]
        self.table.refold(i, self.nodes[i], (s for slots in held.values() for s in slots))

    def _fold_one(self, i: int, task_id: str) -> None:
        # Without the per-node index, the newest task folds onto the table as the
        # constructor would have folded it last.
        t = self.table
        for slot in self.running[task_id].slots:
            if t.index.get(slot.node) != i:
                continue
            t.holders[i] += 1
            if slot.exclusive:
                t.free_cpus[i], t.free_gpus[i], t.free_memory[i] = 0.0, 0, 0
                t.exclusive[i] = True
            else:
                t.free_cpus[i] = max(t.free_cpus[i] - slot.cpus, 0.0)
                t.free_gpus[i] = max(t.free_gpus[i] - slot.gpus, 0)
                t.free_memory[i] = max(t.free_memory[i] - slot.memory, 0)


def _replaced(cluster: Cluster, node: Node) -> Cluster:
    """``cluster`` with the node of ``node``'s name replaced (same place in the order)."""
    return Cluster(
        tuple(
            Site(
                site.name,
                tuple(
                    Pool(pool.name, tuple(node if n.name == node.name else n for n in pool.nodes))
                    for pool in site.pools
                ),
            )
            for site in cluster.sites
        )
    )


__all__ = ["Capacity", "Ending"]
