"""The facility policy: hand-computed orders and hypothesis properties over random inputs."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.model import QoS, Resources
from hexflow.scheduler.cluster import Cluster, Node, NodeState, Slot
from hexflow.scheduler.decisions import (
    Decision,
    PendingTask,
    PolicyConfig,
    Preempt,
    Reject,
    Reserve,
    RunningTask,
    Start,
    decay_usage,
)
from hexflow.scheduler.policy import decide, priority_order

NOW = 1000.0


def _task(
    tid: str, cpus: float = 1, nodes: int = 1, walltime: float = 10, **kw: object
) -> PendingTask:
    return PendingTask(tid, Resources(cpus=cpus, nodes=nodes), walltime, **kw)  # type: ignore[arg-type]


def _starts(decisions: list[Decision]) -> list[str]:
    return [d.task_id for d in decisions if isinstance(d, Start)]


# -- hand-computed examples ----------------------------------------------------------------


def test_qos_classes_in_strict_order() -> None:
    queue = [
        _task("reg", qos=QoS.REGULAR),
        _task("pre", qos=QoS.PREEMPT),
        _task("rt", qos=QoS.REALTIME),
        _task("int", qos=QoS.INTERACTIVE),
        _task("urg", qos=QoS.URGENT),
    ]
    order = [t.task_id for t in priority_order(queue, {}, PolicyConfig())]
    assert order == ["rt", "urg", "int", "reg", "pre"]
    # one 2-cpu node: only the two highest classes start
    cluster = Cluster.single_pool([Node("n", 2)])
    assert _starts(decide(cluster, queue, [], {}, NOW)) == ["rt", "urg"]


def test_fair_share_orders_projects_by_decayed_usage() -> None:
    queue = [_task("a1", project="a"), _task("b1", project="b"), _task("a2", project="a")]
    usage = {"a": 100.0, "b": 10.0}
    order = [t.task_id for t in priority_order(queue, usage, PolicyConfig())]
    assert order == ["b1", "a1", "a2"]
    # after two half-lives a's usage is 25: still above b's
    assert decay_usage(usage, 7200, 3600) == {"a": 25.0, "b": 2.5}
    off = [t.task_id for t in priority_order(queue, usage, PolicyConfig(fair_share=False))]
    assert off == ["a1", "b1", "a2"]


def test_earliest_deadline_first_inside_realtime() -> None:
    queue = [
        _task("late", qos=QoS.REALTIME, deadline=NOW + 500),
        _task("none", qos=QoS.REALTIME),
        _task("soon", qos=QoS.REALTIME, deadline=NOW + 50),
        _task("reg", qos=QoS.REGULAR, deadline=NOW + 20),
    ]
    order = [t.task_id for t in priority_order(queue, {}, PolicyConfig())]
    assert order == ["soon", "late", "none", "reg"]


def test_admission_rejects_an_impossible_deadline_with_the_reason() -> None:
    cluster = Cluster.single_pool([Node("n", 4)])
    queue = [
        _task("no", walltime=100, deadline=NOW + 50, qos=QoS.URGENT),
        _task("try", walltime=100, deadline=NOW + 50, qos=QoS.URGENT, best_effort=True),
    ]
    decisions = decide(cluster, queue, [], {}, NOW)
    reject = decisions[0]
    assert isinstance(reject, Reject) and reject.task_id == "no"
    assert "deadline 1050 cannot be met" in reject.reason and "1100" in reject.reason
    assert decisions[1] == Start("try", ("n",), at_risk=True)


def test_easy_backfills_around_the_head_without_delaying_it() -> None:
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4)])
    running = [RunningTask("r", (Slot("n1", 4),), started=0, expected_end=NOW + 100)]
    queue = [
        _task("big", cpus=4, nodes=2, walltime=50),  # head: both nodes, when r ends
        _task("long", cpus=2, walltime=500),  # would hold n2 past 1100: waits
        _task("short", cpus=2, walltime=100),  # ends at 1100: backfills on n2
    ]
    decisions = decide(cluster, queue, running, {}, NOW)
    assert decisions == [
        Reserve("big", ("n1", "n2"), NOW + 100),
        Start("short", ("n2",)),
    ]
    strict = decide(cluster, queue, running, {}, NOW, PolicyConfig(backfill=False))
    assert strict == []


def test_realtime_preempts_the_most_recent_preempt_task_and_reserves_after_grace() -> None:
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4)])
    running = [
        RunningTask("old", (Slot("n1", 4),), 10, NOW + 999, QoS.PREEMPT, preemptible=True),
        RunningTask("new", (Slot("n2", 4),), 20, NOW + 999, QoS.PREEMPT, preemptible=True),
    ]
    queue = [_task("rt", cpus=2, qos=QoS.REALTIME), _task("reg", cpus=2)]
    decisions = decide(cluster, queue, running, {}, NOW, PolicyConfig(preempt_grace=30))
    assert decisions[:2] == [
        Preempt("new", "preempted for realtime task rt"),
        Reserve("rt", ("n2",), NOW + 30),
    ]
    off = decide(cluster, queue, running, {}, NOW, PolicyConfig(preemption=False))
    assert not any(isinstance(d, Preempt) for d in off)


def test_gang_starts_whole_or_not_at_all() -> None:
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4)])
    fits = [_task("sim", cpus=4, gang="g"), _task("ana", cpus=4, gang="g")]
    assert sorted(_starts(decide(cluster, fits, [], {}, NOW))) == ["ana", "sim"]
    too_big = [*fits, _task("viz", cpus=4, gang="g")]
    assert _starts(decide(cluster, too_big, [], {}, NOW)) == []


def test_leaving_draining_and_down_nodes_get_no_new_work() -> None:
    cluster = Cluster.single_pool(
        [
            Node("soon", 4, leaves_at=NOW + 5),
            Node("drain", 4, state=NodeState.DRAINING),
            Node("down", 4, state=NodeState.DOWN),
            Node("ok", 4),
        ]
    )
    decisions = decide(cluster, [_task("t", walltime=10), _task("u", cpus=4)], [], {}, NOW)
    assert decisions[0] == Start("t", ("ok",))
    assert _task("x").walltime == 10


def test_requests_no_node_can_hold_are_rejected() -> None:
    cluster = Cluster.single_pool([Node("n", 4)])
    decisions = decide(cluster, [_task("huge", cpus=8), _task("wide", nodes=2)], [], {}, NOW)
    assert [type(d) for d in decisions] == [Reject, Reject]


# -- properties over random inputs ---------------------------------------------------------


@st.composite
def _inputs(
    draw: st.DrawFn,
) -> tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]]:
    n_nodes = draw(st.integers(1, 8))
    nodes = []
    for k in range(n_nodes):
        state = draw(st.sampled_from([NodeState.UP] * 4 + [NodeState.DRAINING, NodeState.DOWN]))
        leaves = draw(st.one_of(st.none(), st.floats(NOW, NOW + 300)))
        nodes.append(
            Node(
                f"n{k}",
                draw(st.sampled_from([1, 2, 4, 8])),
                gpus=draw(st.integers(0, 2)),
                memory=draw(st.sampled_from([0, 16])),
                state=state,
                leaves_at=leaves,
            )
        )
    cluster = Cluster.single_pool(nodes)
    running = []
    for k, node in enumerate(nodes):
        left = node.cpus
        for j in range(draw(st.integers(0, 2))):
            cpus = draw(st.sampled_from([0.5, 1, 2]))
            if cpus > left:
                break
            left -= cpus
            qos = draw(st.sampled_from([*QoS, QoS.PREEMPT, QoS.PREEMPT]))
            running.append(
                RunningTask(
                    f"r{k}.{j}",
                    (Slot(node.name, cpus),),
                    started=draw(st.floats(0, NOW)),
                    expected_end=draw(st.floats(NOW - 10, NOW + 300)),
                    qos=qos,
                    preemptible=draw(st.booleans()),
                )
            )
    queue = []
    for k in range(draw(st.integers(0, 12))):
        deadline = draw(st.one_of(st.none(), st.none(), st.floats(NOW, NOW + 400)))
        queue.append(
            PendingTask(
                f"t{k}",
                Resources(
                    cpus=draw(st.sampled_from([0.5, 1, 2, 4])),
                    nodes=draw(st.sampled_from([1, 1, 1, 2, 3])),
                    gpus=draw(st.sampled_from([0, 0, 0, 1])),
                    memory=draw(st.sampled_from([0, 8])),
                ),
                walltime=draw(st.floats(1, 200)),
                qos=draw(st.sampled_from(list(QoS))),
                project=draw(st.sampled_from("abc")),
                submit_time=draw(st.floats(0, NOW)),
                deadline=deadline,
                best_effort=draw(st.booleans()),
                exclusive=draw(st.integers(0, 4)) == 0,
                gang=draw(st.sampled_from([None, None, None, "g1", "g2"])),
            )
        )
    usage = {p: draw(st.floats(0, 100)) for p in "abc"}
    return cluster, queue, running, usage


def _check(
    cluster: Cluster,
    queue: list[PendingTask],
    running: list[RunningTask],
    config: PolicyConfig,
    decisions: list[Decision],
) -> None:
    nodes = {n.name: n for n in cluster.nodes()}
    tasks = {t.task_id: t for t in queue}
    # node -> [cpus, gpus, memory, holders, exclusive], after this pass's starts
    used: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in running:
        for s in r.slots:
            u = used[s.node]
            u[0] += s.cpus
            u[3] += 1
    starts = [d for d in decisions if isinstance(d, Start)]
    decided = [d.task_id for d in decisions if not isinstance(d, Preempt)]
    assert len(decided) == len(set(decided)), "a task got two decisions"
    for d in starts:
        t = tasks[d.task_id]
        assert len(d.nodes) == len(set(d.nodes)) == t.resources.nodes
        for name in d.nodes:
            node = nodes[name]
            assert node.state is NodeState.UP, f"{t.task_id} placed on {node.state} {name}"
            assert node.leaves_at is None or node.leaves_at >= NOW + t.walltime
            u = used[name]
            if t.exclusive:
                assert u[3] == 0, f"exclusive {t.task_id} on a held node {name}"
                u[4] = 1
            else:
                assert not u[4], f"{t.task_id} on exclusively held {name}"
            u[0] += t.resources.cpus
            u[1] += t.resources.gpus
            u[2] += t.resources.memory
            u[3] += 1
            assert u[0] <= node.cpus + 1e-9 or (t.exclusive and u[3] == 1)
            assert u[1] <= node.gpus and u[2] <= node.memory or t.exclusive
        if t.deadline is not None and not d.at_risk:
            assert NOW + t.walltime <= t.deadline
    # preemption takes only preempt-class, preemptible work
    by_id = {r.task_id: r for r in running}
    for d in decisions:
        if isinstance(d, Preempt):
            assert by_id[d.task_id].may_be_preempted
    # admission: impossible deadlines are rejected with a reason
    rejected = {d.task_id: d.reason for d in decisions if isinstance(d, Reject)}
    assert all(rejected.values())
    for t in queue:
        if t.deadline is not None and NOW + t.walltime > t.deadline and not t.best_effort:
            assert t.task_id in rejected
    # gangs: all members start or none does
    started = {d.task_id for d in starts}
    gangs: dict[str, set[bool]] = defaultdict(set)
    for t in queue:
        if t.gang is not None:
            gangs[t.gang].add(t.task_id in started)
    assert all(len(v) == 1 for v in gangs.values())
    _check_plan(cluster, queue, running, config, decisions)


def _check_plan(
    cluster: Cluster,
    queue: list[PendingTask],
    running: list[RunningTask],
    config: PolicyConfig,
    decisions: list[Decision],
) -> None:
    """No reservation is delayed: with what keeps running (until its expected end), this
    pass's starts and every reservation counted, no node is over-allocated at any time a
    reservation holds. Preempted work counts as gone (it stops within the grace period)."""
    nodes = {n.name: n for n in cluster.nodes()}
    tasks = {t.task_id: t for t in queue}
    after_now = math.nextafter(NOW, math.inf)
    preempted = {d.task_id for d in decisions if isinstance(d, Preempt)}
    # (node, from, until, cpus, gpus, memory, whole)
    holds = [
        (s.node, NOW, max(r.expected_end, after_now), s.cpus, s.gpus, s.memory, s.exclusive)
        for r in running
        if r.task_id not in preempted
        for s in r.slots
    ]
    reserves: list[tuple[Reserve, bool]] = []  # (reservation, made for a preemption)
    for k, d in enumerate(decisions):
        if isinstance(d, Start | Reserve):
            t = tasks[d.task_id]
            at = d.at if isinstance(d, Reserve) else NOW
            r = t.resources
            for name in d.nodes:
                holds.append((name, at, at + t.walltime, r.cpus, r.gpus, r.memory, t.exclusive))
        if isinstance(d, Reserve):
            reserves.append((d, k > 0 and isinstance(decisions[k - 1], Preempt)))
    for d, _ in reserves:
        t = tasks[d.task_id]
        end = d.at + t.walltime
        for name in d.nodes:
            node = nodes[name]
            assert node.state is NodeState.UP
            assert node.leaves_at is None or node.leaves_at >= end, f"{name} leaves first"
            mine = [h for h in holds if h[0] == name]
            for point in {d.at} | {h[1] for h in mine if d.at < h[1] < end}:
                active = [h for h in mine if h[1] <= point < h[2]]
                if any(h[6] for h in active):
                    assert len(active) == 1, f"{d.task_id} delayed on {name} (whole node)"
                else:
                    assert sum(h[3] for h in active) <= node.cpus + 1e-9, f"{d.task_id} delayed"
                    assert sum(h[4] for h in active) <= node.gpus
                    assert sum(h[5] for h in active) <= node.memory
    blocked = [d for d, for_preemption in reserves if not for_preemption]
    if config.backfill_mode == "easy":
        # one head: a task, or a gang's members at one common time
        assert len({d.at for d in blocked}) <= 1
        gangs = {tasks[d.task_id].gang for d in blocked}
        assert len(blocked) <= 1 or (len(gangs) == 1 and None not in gangs)
    if config.backfill_mode == "none":
        assert not blocked


CONFIGS = st.builds(
    PolicyConfig,
    fair_share=st.booleans(),
    edf=st.booleans(),
    admission=st.just(True),
    backfill=st.sampled_from([False, True, "none", "easy", "conservative"]),
    preemption=st.booleans(),
    reservation_depth=st.sampled_from([None, None, 1, 3]),
    charge_in_pass=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(_inputs(), CONFIGS)
def test_decisions_keep_the_invariants(
    inputs: tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]],
    config: PolicyConfig,
) -> None:
    cluster, queue, running, usage = inputs
    decisions = decide(cluster, queue, running, usage, NOW, config)
    _check(cluster, queue, running, config, decisions)
    assert decide(cluster, queue, running, usage, NOW, config) == decisions  # deterministic


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 100), st.floats(0, 300)), min_size=1, max_size=10))
def test_feasible_deadline_tasks_start_in_time_on_a_free_cluster(
    specs: list[tuple[float, float]],
) -> None:
    cluster = Cluster.single_pool([Node(f"n{k}", 1) for k in range(len(specs))])
    queue = [
        _task(f"t{k}", walltime=w, deadline=NOW + w + slack, qos=QoS.URGENT)
        for k, (w, slack) in enumerate(specs)
    ]
    decisions = decide(cluster, queue, [], {}, NOW)
    assert sorted(_starts(decisions)) == sorted(t.task_id for t in queue)
    assert not any(d.at_risk for d in decisions if isinstance(d, Start))


def test_walltime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="walltime"):
        _task("t", walltime=0)


def test_preemption_prefers_the_node_with_fewest_victims() -> None:
    cluster = Cluster.single_pool([Node("two", 4), Node("one", 4)])

    def victim(tid: str, node: str, cpus: float, started: float) -> RunningTask:
        return RunningTask(tid, (Slot(node, cpus),), started, NOW + 999, QoS.PREEMPT, True)

    running = [victim("a", "two", 2, 50), victim("b", "two", 2, 60), victim("c", "one", 4, 10)]
    decisions = decide(cluster, [_task("u", cpus=4, qos=QoS.URGENT)], running, {}, NOW)
    assert decisions == [
        Preempt("c", "preempted for urgent task u"),
        Reserve("u", ("one",), NOW + 30),
    ]
