"""Elastic pools: plan parsing and validation, targets by time of day, and resize properties."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.errors import SpecError
from hexflow.model import QoS
from hexflow.scheduler.cluster import Node, NodeState, Slot
from hexflow.scheduler.decisions import RunningTask
from hexflow.scheduler.elastic import (
    Plan,
    Resize,
    apply_resize,
    next_change,
    parse_plan,
    resize,
    targets,
)

MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday
HOUR = 3600.0
PLAN = {
    "pools": [
        {
            "name": "interactive",
            "qos": ["interactive"],
            "nodes": 16,
            "windows": [{"days": "mon-fri", "hours": "08-18", "nodes": 64}],
        },
        {"name": "debug", "qos": "urgent", "nodes": 4},
        {"name": "batch", "nodes": "rest"},
    ]
}


def plan() -> Plan:
    return parse_plan(PLAN, 100)


def two(first: dict[str, object], second: dict[str, object]) -> dict[str, object]:
    return {"pools": [first, second]}


def test_targets_follow_the_windows() -> None:
    p = plan()
    assert targets(p, MONDAY + 9 * HOUR) == {"interactive": 64, "debug": 4, "batch": 32}
    assert targets(p, MONDAY + 18 * HOUR) == {"interactive": 16, "debug": 4, "batch": 80}
    assert targets(p, MONDAY + 8 * HOUR - 1) == {"interactive": 16, "debug": 4, "batch": 80}
    saturday_noon = MONDAY + 5 * 24 * HOUR + 12 * HOUR
    assert targets(p, saturday_noon)["interactive"] == 16
    friday_noon = MONDAY + 4 * 24 * HOUR + 12 * HOUR
    assert targets(p, friday_noon)["interactive"] == 64
    assert p.most("interactive") == 64 and p.most("batch") == 80


def test_next_change_and_routing() -> None:
    p = plan()
    assert next_change(p, MONDAY) == MONDAY + 8 * HOUR
    assert next_change(p, MONDAY + 8 * HOUR) == MONDAY + 18 * HOUR
    friday_evening = MONDAY + 4 * 24 * HOUR + 18 * HOUR
    assert next_change(p, friday_evening) == MONDAY + 7 * 24 * HOUR + 8 * HOUR  # next Monday
    assert next_change(parse_plan({"pools": [{"name": "a", "nodes": 3}]}, 3), 0.0) == math.inf
    assert p.pool_for(QoS.INTERACTIVE) == "interactive"
    assert p.pool_for(QoS.URGENT) == "debug"
    assert p.pool_for(QoS.REGULAR) == "batch"  # the rest pool takes unlisted classes


def test_day_and_hour_forms() -> None:
    def window(**spec: object) -> Plan:
        return parse_plan({"pools": [{"name": "a", "nodes": 1, "windows": [spec]}]}, 10)

    weekend = window(days="sat,sun", hours="08:30-17:45", nodes=5).pools[0].windows[0]
    assert weekend.days == {5, 6} and (weekend.start, weekend.end) == (510, 1065)
    wrap = window(days="fri-mon", nodes=2).pools[0].windows[0]
    assert wrap.days == {4, 5, 6, 0} and (wrap.start, wrap.end) == (0, 24 * 60)
    assert window(days=["mon", "wed"], nodes=2).pools[0].windows[0].days == {0, 2}
    assert window(days="all", nodes=2).pools[0].windows[0].days == set(range(7))


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ([], "plan", "mapping"),
        ({"pools": []}, "pools", "non-empty"),
        ({"pool": []}, "plan.pool", "unknown key"),
        ({"pools": [{"nodes": 3}]}, "pools[0].name", "pool name"),
        ({"pools": [{"name": "a", "nodes": -1}]}, "pools[0].nodes", "node count"),
        ({"pools": [{"name": "a", "nodes": "many"}]}, "pools[0].nodes", "node count"),
        (two({"name": "a", "nodes": 1}, {"name": "a", "nodes": 1}), "pools[1].name", "twice"),
        (two({"name": "a", "nodes": "rest"}, {"name": "b", "nodes": "rest"}), "pools", "rest"),
        ({"pools": [{"name": "a", "nodes": 1, "qos": ["vip"]}]}, "pools[0].qos", "unknown class"),
        ({"pools": [{"name": "a", "nodes": 1, "size": 3}]}, "pools[0].size", "unknown key"),
        ({"pools": [{"name": "a", "nodes": 1, "windows": {}}]}, "pools[0].windows", "list"),
        ({"pools": [{"name": "a", "nodes": 1, "windows": [{"nodes": 2, "days": "funday"}]}]},
         "pools[0].windows[0].days", "day"),
        ({"pools": [{"name": "a", "nodes": 1, "windows": [{"nodes": 2, "hours": "18-08"}]}]},
         "pools[0].windows[0].hours", "ends before"),
        ({"pools": [{"name": "a", "nodes": 1, "windows": [{"nodes": 2, "hours": "8am-5pm"}]}]},
         "pools[0].windows[0].hours", "cannot read"),
        ({"pools": [{"name": "a", "nodes": 1, "windows": [{"hours": "08-18"}]}]},
         "pools[0].windows[0].nodes", "node count"),
        ({"pools": [{"name": "a", "nodes": "rest", "windows": [{"nodes": 1}]}]},
         "pools[0].windows[0]", "rest pool"),
        (two({"name": "a", "nodes": 60}, {"name": "b", "nodes": 50}), "pools", "ask for 110"),
        ({"pools": [{"name": "a", "nodes": 10, "windows": [{"days": "tue", "hours": "09-10",
                                                             "nodes": 120}]}]},
         "pools", "on tue at 09:00"),
    ],
)  # fmt: skip
def test_bad_plans_name_the_field(data: object, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_plan(data, 100)
    assert caught.value.fields["field"] == field
    assert words in caught.value.message
    assert pickle.loads(pickle.dumps(caught.value)).fields == caught.value.fields


# -- resize ---------------------------------------------------------------------------


def nodes(n: int, draining: tuple[int, ...] = (), down: tuple[int, ...] = ()) -> list[Node]:
    out = []
    for i in range(n):
        state = NodeState.DRAINING if i in draining else NodeState.UP
        state = NodeState.DOWN if i in down else state
        out.append(Node(f"n{i}", 4.0, state=state))
    return out


def task(task_id: str, end: float, *where: str) -> RunningTask:
    return RunningTask(task_id, tuple(Slot(n, 1.0) for n in where), 0.0, end)


def test_shrink_releases_idle_nodes_first_then_drains_soonest_free() -> None:
    pool = nodes(6)
    running = [task("a", 500.0, "n0"), task("b", 200.0, "n1", "n2")]
    change = resize(pool, running, 2, now=100.0)
    # idle n5, n4, n3 leave now (last first); then n1 (free at 200) drains
    assert change.release == ("n5", "n4", "n3")
    assert change.drain == (("n1", 200.0),)
    assert change.stop == () and change.grow == 0
    after = apply_resize(pool, change)
    assert [(n.name, n.state) for n in after] == [
        ("n0", NodeState.UP),
        ("n1", NodeState.DRAINING),
        ("n2", NodeState.UP),
    ]
    assert after[1].leaves_at == 200.0
    # once b ends, the drained node leaves
    again = resize(after, [running[0]], 2, now=200.0)
    assert again == Resize(release=("n1",))


def test_force_stops_the_work_on_nodes_it_takes() -> None:
    pool = nodes(3)
    running = [task("a", 500.0, "n0"), task("b", 200.0, "n1", "n2")]
    change = resize(pool, running, 1, now=100.0, force=True)
    assert change.release == ("n1", "n2")
    assert change.stop == ("b",)
    assert change.drain == ()


def test_grow_restores_draining_nodes_then_asks_for_more() -> None:
    pool = nodes(4, draining=(1, 2), down=(3,))
    running = [task("a", 900.0, "n2")]
    change = resize(pool, running, 4, now=0.0)
    assert change.restore == ("n2", "n1")  # busy first
    assert change.grow == 1
    assert resize(pool, running, 2, now=0.0).restore == ("n2",)
    assert change.release == ()
    # a DOWN node is neither counted nor touched
    assert "n3" not in change.release + change.restore


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[Node], list[RunningTask], int, bool]:
    count = draw(st.integers(0, 10))
    states = draw(st.lists(st.sampled_from(list(NodeState)), min_size=count, max_size=count))
    pool = [Node(f"n{i}", 4.0, state=s) for i, s in enumerate(states)]
    live = [n.name for n in pool if n.state is not NodeState.DOWN]
    running = []
    for k in range(draw(st.integers(0, 6))):
        if not live:
            break
        where = draw(st.lists(st.sampled_from(live), min_size=1, max_size=3, unique=True))
        running.append(task(f"t{k}", float(draw(st.integers(0, 1000))), *where))
    return pool, running, draw(st.integers(0, 12)), draw(st.booleans())


def _busy(running: list[RunningTask]) -> set[str]:
    return {s.node for t in running for s in t.slots}


@settings(max_examples=400, deadline=None)
@given(pools())
def test_resize_properties(case: tuple[list[Node], list[RunningTask], int, bool]) -> None:
    pool, running, target, force = case
    now = 50.0
    change = resize(pool, running, target, now, force)
    names = [n.name for n in pool]
    moved = [*change.release, *(n for n, _ in change.drain), *change.restore]
    assert len(moved) == len(set(moved)) and set(moved) <= set(names)
    busy = _busy(running)
    if not force:
        # never kills work: nothing stopped, no busy node released
        assert change.stop == ()
        assert not busy & set(change.release)
    else:
        on_released = {
            t.task_id for t in running if {s.node for s in t.slots} & set(change.release)
        }
        assert set(change.stop) == on_released
    assert all(leaves >= now for _, leaves in change.drain)
    assert {n for n, _ in change.drain} <= busy
    after = apply_resize(pool, change)
    up = sum(1 for n in after if n.state is NodeState.UP)
    # never over-allocates: exactly the target UP (shrinking), or what there is plus what
    # is asked for from outside is exactly the target (growing)
    if sum(1 for n in pool if n.state is NodeState.UP) >= target:
        assert (up, change.grow) == (target, 0)
    else:
        assert up <= target and up + change.grow == target
    # DOWN nodes are untouched
    assert [n for n in after if n.state is NodeState.DOWN] == [
        n for n in pool if n.state is NodeState.DOWN
    ]


@settings(max_examples=300, deadline=None)
@given(pools())
def test_target_reached_once_work_ends(
    case: tuple[list[Node], list[RunningTask], int, bool],
) -> None:
    pool, running, target, _ = case
    first = resize(pool, running, target, 0.0)
    after = apply_resize(pool, first)
    # every task ends; the next resize settles the pool exactly at the target
    second = resize(after, [], target, 2000.0)
    settled = apply_resize(after, second)
    live = [n for n in settled if n.state is not NodeState.DOWN]
    assert all(n.state is NodeState.UP for n in live)
    assert len(live) + second.grow == target
    assert resize(settled, [], target, 3000.0).release == ()


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 4e9, allow_nan=False))
def test_next_change_is_a_later_whole_second_where_targets_change(t: float) -> None:
    p = plan()
    at = next_change(p, t)
    assert at > t and at == int(at)
    # nothing changes in between
    assert targets(p, (t + at) / 2) == targets(p, t) == targets(p, math.nextafter(at, 0))
