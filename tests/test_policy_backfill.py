"""Backfilling modes, gang reservations and fair share charged within a pass.

Hand-computed cases for each, and properties over random inputs: conservative
backfilling with a depth of one decides as EASY; gangs start whole or not at all and,
when blocked, are reserved at one common time. The no-delay property for every mode is
checked with the other invariants in test_policy.py (``_check_plan``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.model import QoS, Resources
from hexflow.scheduler.cluster import Cluster, Node, Slot
from hexflow.scheduler.decisions import (
    Decision,
    PendingTask,
    PolicyConfig,
    Reserve,
    RunningTask,
    Start,
)
from hexflow.scheduler.policy import decide
from tests.test_policy import NOW, _check, _inputs


def _task(tid: str, cpus: float = 1, walltime: float = 10, **kw: object) -> PendingTask:
    nodes = kw.pop("nodes", 1)
    return PendingTask(tid, Resources(cpus=cpus, nodes=nodes), walltime, **kw)  # type: ignore[arg-type]


def _kinds(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(type(d).__name__, d.task_id) for d in decisions]


def test_backfill_spellings() -> None:
    assert PolicyConfig(backfill=True) == PolicyConfig(backfill="easy")
    assert PolicyConfig(backfill=False) == PolicyConfig(backfill="none")
    assert PolicyConfig(backfill=False).backfill_mode == "none"
    assert PolicyConfig(backfill="conservative").backfill_mode == "conservative"
    assert not PolicyConfig(backfill="none").backfill  # reads as a bool, as before
    with pytest.raises(ValueError, match="'none', 'easy' or 'conservative'"):
        PolicyConfig(backfill="eager")
    with pytest.raises(ValueError, match="reservation_depth"):
        PolicyConfig(reservation_depth=0)


def _two_blocked() -> tuple[Cluster, list[RunningTask], list[PendingTask]]:
    # n1 half free until r1 ends at +100; n2 busy until +50; n3 busy until +200.
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4), Node("n3", 4)])
    running = [
        RunningTask("r1", (Slot("n1", 2),), 0, NOW + 100),
        RunningTask("r2", (Slot("n2", 4),), 0, NOW + 50),
        RunningTask("r3", (Slot("n3", 4),), 0, NOW + 200),
    ]
    queue = [
        _task("wide", cpus=4, nodes=2, walltime=100),  # n1 + n2 when r1 ends: +100
        _task("big", cpus=4, walltime=100),  # would overlap "wide" on n2 from +50
        _task("long", cpus=2, walltime=300),  # on n1 now it would delay "wide"
        _task("mid", cpus=2, walltime=80),  # on n1 until +80: delays nobody
    ]
    return cluster, running, queue


def test_easy_reserves_the_head_only() -> None:
    cluster, running, queue = _two_blocked()
    decisions = decide(cluster, queue, running, {}, NOW)
    assert decisions == [Reserve("wide", ("n1", "n2"), NOW + 100), Start("mid", ("n1",))]


def test_conservative_reserves_every_blocked_task_in_order() -> None:
    cluster, running, queue = _two_blocked()
    config = PolicyConfig(backfill="conservative")
    decisions = decide(cluster, queue, running, {}, NOW, config)
    assert decisions == [
        Reserve("wide", ("n1", "n2"), NOW + 100),
        Reserve("big", ("n1",), NOW + 200),  # all three nodes are free then: first fit
        Reserve("long", ("n2",), NOW + 200),  # n1 is booked for "big" from +200
        Start("mid", ("n1",)),
    ]
    _check(cluster, queue, running, config, decisions)
    # with a depth of one it is EASY again
    one = PolicyConfig(backfill="conservative", reservation_depth=1)
    assert decide(cluster, queue, running, {}, NOW, one) == decide(cluster, queue, running, {}, NOW)


def test_a_start_that_would_delay_a_later_reservation_waits() -> None:
    # EASY protects only the head: "x" takes n3 and pushes "second" back. Conservative
    # reserves n3 for "second" and keeps "x" off it.
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4), Node("n3", 3)])
    running = [
        RunningTask("r1", (Slot("n1", 4),), 0, NOW + 100),
        RunningTask("r3", (Slot("n3", 2),), 0, NOW + 50),
    ]
    queue = [
        _task("head", cpus=4, nodes=2, walltime=10),  # n1 + n2 at +100
        _task("second", cpus=3, walltime=200),  # n3 at +50 (conservative only)
        _task("x", cpus=1, walltime=500),
    ]
    easy = decide(cluster, queue, running, {}, NOW)
    assert easy == [Reserve("head", ("n1", "n2"), NOW + 100), Start("x", ("n3",))]
    config = PolicyConfig(backfill="conservative")
    conservative = decide(cluster, queue, running, {}, NOW, config)
    assert conservative == [
        Reserve("head", ("n1", "n2"), NOW + 100),
        Reserve("second", ("n3",), NOW + 50),
        Reserve("x", ("n1",), NOW + 110),  # once "head" is done
    ]
    _check(cluster, queue, running, config, conservative)


def test_a_blocked_gang_is_reserved_at_one_time() -> None:
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4)])
    running = [
        RunningTask("r1", (Slot("n1", 4),), 0, NOW + 100),
        RunningTask("r2", (Slot("n2", 2),), 0, NOW + 40),
    ]
    queue = [
        _task("sim", cpus=4, walltime=50, gang="g"),
        _task("ana", cpus=4, walltime=20, gang="g"),
        _task("short", cpus=2, walltime=150),  # on n2 would hold it past +100
        _task("quick", cpus=2, walltime=30),  # on n2 until +30: fine
    ]
    gang = [Reserve("sim", ("n1",), NOW + 100), Reserve("ana", ("n2",), NOW + 100)]
    easy = decide(cluster, queue, running, {}, NOW)
    assert easy == [*gang, Start("quick", ("n2",))]
    config = PolicyConfig(backfill="conservative")
    conservative = decide(cluster, queue, running, {}, NOW, config)
    assert conservative == [*gang, Reserve("short", ("n2",), NOW + 120), Start("quick", ("n2",))]
    _check(cluster, queue, running, PolicyConfig(), easy)
    _check(cluster, queue, running, config, conservative)
    # strict order: the gang waits without a reservation and does not stop the pass
    strict = decide(cluster, queue, running, {}, NOW, PolicyConfig(backfill=False))
    assert strict == [Start("short", ("n2",))]


def test_gang_members_may_share_a_node_in_a_reservation() -> None:
    cluster = Cluster.single_pool([Node("n1", 4)])
    running = [RunningTask("r", (Slot("n1", 4),), 0, NOW + 10)]
    queue = [_task("a", cpus=2, gang="g"), _task("b", cpus=2, gang="g")]
    assert decide(cluster, queue, running, {}, NOW) == [
        Reserve("a", ("n1",), NOW + 10),
        Reserve("b", ("n1",), NOW + 10),
    ]


def test_charging_in_the_pass_interleaves_projects() -> None:
    cluster = Cluster.single_pool([Node(f"n{k}", 1) for k in range(4)])
    queue = [_task(f"a{k}", project="a", walltime=100) for k in range(4)]
    queue += [_task(f"b{k}", project="b", walltime=100) for k in range(4)]
    usage = {"a": 0.0, "b": 150.0}

    def started(config: PolicyConfig) -> list[str]:
        decisions = decide(cluster, queue, [], usage, NOW, config)
        return [d.task_id for d in decisions if isinstance(d, Start)]

    assert started(PolicyConfig()) == ["a0", "a1", "a2", "a3"]  # a is lowest all pass long
    # a0 brings a to 100, a1 to 200 (> b's 150): then b0 (b: 250), then a2 (200 < 250)
    assert started(PolicyConfig(charge_in_pass=True)) == ["a0", "a1", "b0", "a2"]


def test_charging_counts_whole_nodes_for_exclusive_tasks() -> None:
    cluster = Cluster.single_pool([Node("n1", 8), Node("n2", 8), Node("n3", 8)])
    queue = [
        _task("a0", cpus=1, walltime=10, project="a", exclusive=True),  # charged 8 x 10
        _task("a1", cpus=1, walltime=10, project="a"),
        _task("b0", cpus=1, walltime=10, project="b"),
    ]
    decisions = decide(cluster, queue, [], {"b": 50.0}, NOW, PolicyConfig(charge_in_pass=True))
    assert [d.task_id for d in decisions] == ["a0", "b0", "a1"]  # a: 80 after a0 > b: 50


@settings(max_examples=300, deadline=None)
@given(_inputs(), st.booleans(), st.booleans())
def test_conservative_with_depth_one_decides_as_easy(
    inputs: tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]],
    preemption: bool,
    fair_share: bool,
) -> None:
    cluster, queue, running, usage = inputs
    easy = PolicyConfig(preemption=preemption, fair_share=fair_share)
    one = PolicyConfig(
        backfill="conservative",
        reservation_depth=1,
        preemption=preemption,
        fair_share=fair_share,
    )
    assert decide(cluster, queue, running, usage, NOW, one) == decide(
        cluster, queue, running, usage, NOW, easy
    )


@settings(max_examples=300, deadline=None)
@given(_inputs(), st.sampled_from(["easy", "conservative"]))
def test_gangs_start_whole_or_wait_reserved_at_one_time(
    inputs: tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]],
    backfill: str,
) -> None:
    cluster, queue, running, usage = inputs
    config = PolicyConfig(backfill=backfill, preemption=False)
    decisions = decide(cluster, queue, running, usage, NOW, config)
    _check(cluster, queue, running, config, decisions)
    members: dict[str, list[str]] = {}
    for t in queue:
        if t.gang is not None:
            members.setdefault(t.gang, []).append(t.task_id)
    for ids in members.values():
        mine = [d for d in decisions if d.task_id in ids]
        kinds = {type(d) for d in mine}
        assert len(kinds) <= 1, f"gang members decided differently: {mine}"
        if kinds in ({Start}, {Reserve}):
            assert len(mine) == len(ids)  # every member, or none
        if kinds == {Reserve}:
            assert len({d.at for d in mine if isinstance(d, Reserve)}) == 1


def test_charge_in_pass_leaves_edf_order_alone() -> None:
    cluster = Cluster.single_pool([Node("n", 1)])
    queue = [
        _task("late", qos=QoS.URGENT, project="a", deadline=NOW + 500),
        _task("soon", qos=QoS.URGENT, project="b", deadline=NOW + 50),
    ]
    config = PolicyConfig(charge_in_pass=True, preemption=False)
    assert [d.task_id for d in decide(cluster, queue, [], {"b": 9e9}, NOW, config)][:1] == ["soon"]
