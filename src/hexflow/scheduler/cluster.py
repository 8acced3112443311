"""The facility as the policy sees it: cluster -> sites -> pools -> nodes, and free capacity.

Immutable description (``Cluster``) plus ``FreeNodes``, the mutable table of what each node
has free once running work is counted (kept across passes by ``capacity.Capacity``, copied
for each pass). Invariant: free amounts never go below
zero and a node held exclusively has no other holder. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


class NodeState(StrEnum):
    UP = "up"
    DRAINING = "draining"  # running work continues; no new work
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Node:
    """One node. ``leaves_at``: when it leaves its pool (drain, outage, allocation end)."""

    name: str
    cpus: float
    gpus: int = 0
    memory: int = 0
    state: NodeState = NodeState.UP
    leaves_at: float | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    pools: tuple[Pool, ...]


@dataclass(frozen=True, slots=True)
class Cluster:
    sites: tuple[Site, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for node in self.nodes():
            if node.name in seen:
                raise ValueError(f"cluster: node name {node.name!r} appears twice")
            seen.add(node.name)

    def nodes(self) -> Iterator[Node]:
        """Every node, in site, pool, node order (the order placements prefer)."""
        for site in self.sites:
            for pool in site.pools:
                yield from pool.nodes

    @classmethod
    def single_pool(cls, nodes: Iterable[Node], site: str = "site", pool: str = "pool") -> Cluster:
        return cls((Site(site, (Pool(pool, tuple(nodes)),)),))


@dataclass(frozen=True, slots=True)
class Slot:
    """What one running task holds on one node (``exclusive``: the whole node)."""

    node: str
    cpus: float
    gpus: int = 0
    memory: int = 0
    exclusive: bool = False


class FreeNodes:
    """Free capacity per node for one decision pass, indexed by position in the cluster.

    ``take``/``give`` are exact inverses, so a tentative placement (a gang) can be undone.
    """

    def __init__(self, cluster: Cluster, held: Iterable[Slot]) -> None:
        nodes = list(cluster.nodes())
        self.names = [n.name for n in nodes]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.cap_cpus = [n.cpus for n in nodes]
        self.cap_gpus = [n.gpus for n in nodes]
        self.cap_memory = [n.memory for n in nodes]
        self.free_cpus = list(self.cap_cpus)
        self.free_gpus = list(self.cap_gpus)
        self.free_memory = list(self.cap_memory)
        self.holders = [0] * len(nodes)
        self.exclusive = [False] * len(nodes)
        self.leaves_at = [math.inf if n.leaves_at is None else n.leaves_at for n in nodes]
        # usable: may receive new work in this pass (up, and not set aside by a preemption)
        self.usable = [n.state is NodeState.UP for n in nodes]
        index = self.index
        free_cpus, free_gpus, free_memory = self.free_cpus, self.free_gpus, self.free_memory
        holders = self.holders
        for slot in held:  # ``take``, inlined: this loop sees every running task
            i = index.get(slot.node)
            if i is None:
                continue  # a node that left the cluster: its work holds nothing here
            holders[i] += 1
            if slot.exclusive:
                free_cpus[i], free_gpus[i], free_memory[i] = 0.0, 0, 0
                self.exclusive[i] = True
            else:
                # Oversubscription in the input (more held than the node has) clamps at 0.
                free_cpus[i] = max(free_cpus[i] - slot.cpus, 0.0)
                free_gpus[i] = max(free_gpus[i] - slot.gpus, 0)
                free_memory[i] = max(free_memory[i] - slot.memory, 0)

    def __len__(self) -> int:
        return len(self.names)

    def copy(self) -> FreeNodes:
        """A table a pass may change; names, index, capacities and leave times are shared."""
        twin = FreeNodes.__new__(FreeNodes)
        twin.names, twin.index = self.names, self.index
        twin.cap_cpus, twin.cap_gpus, twin.cap_memory = (
            self.cap_cpus,
            self.cap_gpus,
            self.cap_memory,
        )
        twin.leaves_at = self.leaves_at
        twin.free_cpus, twin.free_gpus = self.free_cpus[:], self.free_gpus[:]
        twin.free_memory, twin.holders = self.free_memory[:], self.holders[:]
        twin.exclusive, twin.usable = self.exclusive[:], self.usable[:]
        return twin

    def refold(self, i: int, node: Node, held: Iterable[Slot]) -> None:
        """Recompute node ``i`` from its description and the slots held there, in order.

        The same arithmetic, in the same order, as the constructor: a table kept up to date
        this way equals one built afresh from the same running work.
        """
        self.cap_cpus[i], self.cap_gpus[i], self.cap_memory[i] = node.cpus, node.gpus, node.memory
        self.leaves_at[i] = math.inf if node.leaves_at is None else node.leaves_at
        self.usable[i] = node.state is NodeState.UP
        free_cpus, free_gpus, free_memory = node.cpus, node.gpus, node.memory
        holders, whole = 0, False
        for slot in held:
            holders += 1
            if slot.exclusive:
                free_cpus, free_gpus, free_memory = 0.0, 0, 0
                whole = True
            else:
                free_cpus = max(free_cpus - slot.cpus, 0.0)
                free_gpus = max(free_gpus - slot.gpus, 0)
                free_memory = max(free_memory - slot.memory, 0)
        self.free_cpus[i], self.free_gpus[i], self.free_memory[i] = (
            free_cpus,
            free_gpus,
            free_memory,
        )
        self.holders[i], self.exclusive[i] = holders, whole

    def fits(self, i: int, cpus: float, gpus: int, memory: int, exclusive: bool) -> bool:
        if not self.usable[i] or self.exclusive[i]:
            return False
        if exclusive:
            return self.holders[i] == 0
        return (
            cpus <= self.free_cpus[i]
            and gpus <= self.free_gpus[i]
            and (memory <= self.free_memory[i])
        )

    def take(self, i: int, cpus: float, gpus: int, memory: int, exclusive: bool) -> None:
        # Oversubscription in the input (running work beyond capacity) clamps at zero.
        self.free_cpus[i] = max(self.free_cpus[i] - cpus, 0.0)
        self.free_gpus[i] = max(self.free_gpus[i] - gpus, 0)
        self.free_memory[i] = max(self.free_memory[i] - memory, 0)
        self.holders[i] += 1
        self.exclusive[i] = self.exclusive[i] or exclusive

    def give(self, i: int, cpus: float, gpus: int, memory: int, exclusive: bool) -> None:
        self.free_cpus[i] += cpus
        self.free_gpus[i] += gpus
        self.free_memory[i] += memory
        self.holders[i] -= 1
        if exclusive:
            self.exclusive[i] = False


def free_capacity(cluster: Cluster, held: Iterable[Slot]) -> dict[str, tuple[float, int, int]]:
    """(cpus, gpus, memory) free on each node that can take new work now."""
    table = FreeNodes(cluster, held)
    return {
        name: (table.free_cpus[i], table.free_gpus[i], table.free_memory[i])
        for i, name in enumerate(table.names)
        if table.usable[i] and not table.exclusive[i]
    }


__all__ = ["Cluster", "FreeNodes", "Node", "NodeState", "Pool", "Site", "Slot", "free_capacity"]
