"""The cluster description and its per-pass free-capacity table."""

from __future__ import annotations

import pytest

from hexflow.scheduler.cluster import (
    Cluster,
    FreeNodes,
    Node,
    NodeState,
    Pool,
    Site,
    Slot,
    free_capacity,
)


def _cluster() -> Cluster:
    return Cluster(
        (
            Site("a", (Pool("cpu", (Node("n1", 8, memory=100), Node("n2", 8))),)),
            Site(
                "b",
                (
                    Pool("gpu", (Node("g1", 4, gpus=2),)),
                    Pool("old", (Node("d1", 8, state=NodeState.DOWN),)),
                ),
            ),
        )
    )


def test_nodes_in_site_pool_order() -> None:
    assert [n.name for n in _cluster().nodes()] == ["n1", "n2", "g1", "d1"]


def test_duplicate_node_names_are_refused() -> None:
    with pytest.raises(ValueError, match="n1"):
        Cluster.single_pool([Node("n1", 1), Node("n1", 2)])


def test_fractional_sharing_and_exclusive_holds() -> None:
    held = [Slot("n1", 2.5, memory=40), Slot("n1", 1), Slot("n2", 0, exclusive=True)]
    free = free_capacity(_cluster(), held)
    assert free == {"n1": (4.5, 0, 60), "g1": (4, 2, 0)}  # n2 held whole, d1 down


def test_take_and_give_are_inverses() -> None:
    table = FreeNodes(_cluster(), [])
    assert table.fits(0, 8, 0, 100, False)
    table.take(0, 3, 0, 50, False)
    assert not table.fits(0, 6, 0, 0, False)
    assert not table.fits(0, 0, 0, 0, True)  # a holder: no exclusive request
    table.give(0, 3, 0, 50, False)
    assert table.fits(0, 0, 0, 0, True)
    assert (table.free_cpus[0], table.free_memory[0], table.holders[0]) == (8, 100, 0)


def test_down_and_draining_nodes_take_no_work() -> None:
    cluster = Cluster.single_pool([Node("x", 4, state=NodeState.DRAINING), Node("y", 4)])
    table = FreeNodes(cluster, [])
    assert not table.fits(0, 1, 0, 0, False)
    assert table.fits(1, 1, 0, 0, False)
    assert free_capacity(cluster, []) == {"y": (4, 0, 0)}


def test_slots_on_unknown_nodes_are_ignored() -> None:
    assert free_capacity(_cluster(), [Slot("gone", 4)])["n1"] == (8, 0, 100)


def test_a_copy_is_changed_on_its_own() -> None:
    table = FreeNodes(_cluster(), [Slot("n1", 2)])
    twin = table.copy()
    twin.take(0, 4, 0, 0, False)
    twin.usable[1] = False
    assert (table.free_cpus[0], table.holders[0], table.usable[1]) == (6, 1, True)
    assert (twin.free_cpus[0], twin.holders[0], twin.usable[1]) == (2, 2, False)


def test_refolding_a_node_gives_what_a_fresh_table_has() -> None:
    # oversubscribed input clamps at zero; a whole-node hold empties the node
    held = [Slot("n1", 6, memory=80), Slot("n1", 4, memory=40), Slot("g1", 1, gpus=1)]
    table = FreeNodes(_cluster(), [])
    cluster = _cluster()
    nodes = list(cluster.nodes())
    table.refold(0, nodes[0], held[:2])
    table.refold(2, nodes[2], held[2:])
    fresh = FreeNodes(cluster, held)
    for name in ("free_cpus", "free_gpus", "free_memory", "holders", "exclusive", "usable"):
        assert getattr(table, name) == getattr(fresh, name), name
    table.refold(1, nodes[1], [Slot("n2", 0, exclusive=True), Slot("n2", 1)])
    assert (table.free_cpus[1], table.holders[1], table.exclusive[1]) == (0, 2, True)
    down = Node("n1", 8, memory=100, state=NodeState.DOWN, leaves_at=5.0)
    table.refold(0, down, [])
    assert (table.usable[0], table.leaves_at[0], table.free_cpus[0]) == (False, 5.0, 8)
