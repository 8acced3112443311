"""PolicyState: the incremental state decides exactly as the stateless pass on the same input.

Hypothesis drives random event sequences (submit, remove, start, finish, node changes,
usage changes, applying a pass's starts) against a state and against a plain model of the
input kept by the test; at every pass the state's decisions must equal ``decide`` on the
model, for every backfilling mode. The facility replay, fed through its policy seam, runs
the same on a state as on the stateless pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.model import QoS, Resources
from hexflow.scheduler.cluster import Cluster, Node, NodeState, Slot
from hexflow.scheduler.decisions import PendingTask, PolicyConfig, RunningTask, Start
from hexflow.scheduler.policy import decide
from hexflow.scheduler.state import PolicyState
from hexflow.scheduler.swf import SwfJob
from hexflow.sim import PoolPolicy, replay_facility, stateless
from tests.test_policy import NOW, _inputs

_tasks = st.builds(
    lambda cpus, nodes, gpus, walltime, qos, project, submit, deadline, best, excl, gang: dict(
        resources=Resources(cpus=cpus, nodes=nodes, gpus=gpus),
        walltime=walltime,
        qos=qos,
        project=project,
        submit_time=submit,
        deadline=deadline,
        best_effort=best,
        exclusive=excl,
        gang=gang,
    ),
    st.sampled_from([0.5, 1, 2, 4]),
    st.sampled_from([1, 1, 2]),
    st.sampled_from([0, 0, 1]),
    st.floats(1, 200),
    st.sampled_from(list(QoS)),
    st.sampled_from("abc"),
    st.sampled_from([0.0, 10.0, 500.0, NOW]),
    st.one_of(st.none(), st.none(), st.floats(NOW, NOW + 400)),
    st.booleans(),
    st.integers(0, 4).map(lambda k: k == 0),
    st.sampled_from([None, None, None, "g1", "g3"]),
)

_events = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), _tasks),
        st.tuples(st.just("resubmit"), st.integers(0, 30), _tasks),
        st.tuples(st.just("remove"), st.integers(0, 30)),
        st.tuples(st.just("start"), st.integers(0, 30), st.integers(0, 7), st.booleans()),
        st.tuples(st.just("finish"), st.integers(0, 30)),
        st.tuples(
            st.just("node"),
            st.integers(0, 7),
            st.sampled_from(list(NodeState)),
            st.one_of(st.none(), st.floats(NOW, NOW + 300)),
        ),
        st.tuples(st.just("usage"), st.dictionaries(st.sampled_from("abcd"), st.floats(0, 100))),
        st.tuples(st.just("apply"), st.floats(0, 20)),
        st.tuples(st.just("decide"), st.floats(0, 20)),
    ),
    max_size=25,
)

CONFIGS = st.builds(
    PolicyConfig,
    fair_share=st.booleans(),
    edf=st.booleans(),
    backfill=st.sampled_from(["none", "easy", "conservative"]),
    preemption=st.booleans(),
    reservation_depth=st.sampled_from([None, None, 1, 2]),
    charge_in_pass=st.booleans(),
)


class _Model:
    """The stateless input, kept the plain way: dicts in insertion order."""

    def __init__(
        self,
        cluster: Cluster,
        queue: list[PendingTask],
        running: list[RunningTask],
        usage: dict[str, float],
    ) -> None:
        self.nodes = list(cluster.nodes())
        self.queue = {t.task_id: t for t in queue}
        self.running = {r.task_id: r for r in running}
        self.usage = dict(usage)

    def cluster(self) -> Cluster:
        return Cluster.single_pool(self.nodes)


def _run(
    inputs: tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]],
    config: PolicyConfig,
    events: list[tuple[Any, ...]],
    from_events: bool,
) -> None:
    cluster, queue, running, usage = inputs
    model = _Model(cluster, queue, running, usage)
    if from_events:  # built up by events rather than from a snapshot
        state = PolicyState(cluster, config)
        for r in running:
            state.started(r)
        state.set_usage(usage)
        for t in queue:
            state.submit(t)
    else:
        state = PolicyState.of(cluster, queue, running, usage, config)
    now, last, serial = NOW, [], 0

    def check() -> list[Any]:
        expected = decide(
            model.cluster(), list(model.queue.values()), list(model.running.values()),
            model.usage, now, config,
        )  # fmt: skip
        got = state.decide(now)
        assert got == expected
        snap_cluster, snap_queue, snap_running, snap_usage = state.snapshot()
        assert list(snap_cluster.nodes()) == model.nodes
        assert snap_queue == list(model.queue.values())
        assert snap_running == list(model.running.values())
        assert snap_usage == model.usage
        return got

    for event in events:
        kind = event[0]
        queued, runs = list(model.queue), list(model.running)
        if kind in ("submit", "resubmit"):
            serial += 1
            task_id = f"s{serial}"
            if kind == "resubmit" and queued:
                task_id = queued[event[1] % len(queued)]
            task = PendingTask(task_id, **event[-1])
            model.queue.pop(task_id, None)
            model.queue[task_id] = task
            state.submit(task)
        elif kind == "remove" and queued:
            task_id = queued[event[1] % len(queued)]
            del model.queue[task_id]
            state.remove(task_id)
            assert state.queued(task_id) is None
        elif kind == "start" and queued:
            task = model.queue.pop(queued[event[1] % len(queued)])
            node = model.nodes[event[2] % len(model.nodes)]
            cpus = task.resources.cpus
            slot = Slot(node.name, cpus, task.resources.gpus, 0, exclusive=event[3])
            r = RunningTask(
                task.task_id, (slot,), now, now + task.walltime, task.qos, event[3]
            )  # may oversubscribe the node: the state must clamp as the pass does
            model.running.pop(r.task_id, None)
            model.running[r.task_id] = r
            state.started(r)
        elif kind == "finish" and runs:
            task_id = runs[event[1] % len(runs)]
            del model.running[task_id]
            state.finished(task_id)
            assert state.running(task_id) is None
        elif kind == "node":
            old = model.nodes[event[1] % len(model.nodes)]
            node = Node(old.name, old.cpus, old.gpus, old.memory, event[2], event[3])
            model.nodes[model.nodes.index(old)] = node
            state.set_node(node)
        elif kind == "usage":
            model.usage = dict(event[1])
            state.set_usage(event[1])
        elif kind == "apply":
            # the caller applies the last pass's starts, then time moves on
            for d in last:
                if isinstance(d, Start) and d.task_id in model.queue:
                    task = model.queue.pop(d.task_id)
                    r = RunningTask(
                        task.task_id,
                        tuple(Slot(n, task.resources.cpus, task.resources.gpus) for n in d.nodes),
                        now,
                        now + task.walltime,
                        task.qos,
                        task.qos is QoS.PREEMPT,
                    )
                    model.running[r.task_id] = r
                    state.started(r)
            now += event[1]
        elif kind == "decide":
            now += event[1]
            last = check()
    check()
    assert len(state) == len(model.queue)


@settings(max_examples=300, deadline=None)
@given(_inputs(), CONFIGS, _events, st.booleans())
def test_the_state_decides_as_the_stateless_pass(
    inputs: tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]],
    config: PolicyConfig,
    events: list[tuple[Any, ...]],
    from_events: bool,
) -> None:
    _run(inputs, config, events, from_events)


def test_unknown_ids_and_nodes() -> None:
    state = PolicyState(Cluster.single_pool([Node("n", 4)]))
    state.remove("nope")  # unknown ids are ignored
    state.finished("nope")
    assert len(state) == 0 and state.running_ids() == []
    with pytest.raises(KeyError, match="set_cluster"):
        state.set_node(Node("other", 4))
    task = PendingTask("t", Resources(cpus=1), 10)
    with pytest.raises(ValueError, match="appears twice"):
        PolicyState.of(Cluster.single_pool([Node("n", 4)]), [task, task], [], {})


def test_starts_applied_back_free_the_queue_and_the_nodes() -> None:
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4)])
    state = PolicyState(cluster)
    for k in range(3):
        state.submit(PendingTask(f"t{k}", Resources(cpus=4), 100))
    starts = [d for d in state.decide(NOW) if isinstance(d, Start)]
    assert [d.task_id for d in starts] == ["t0", "t1"]
    for d in starts:
        state.started(RunningTask(d.task_id, (Slot(d.nodes[0], 4),), NOW, NOW + 100))
    assert len(state) == 1
    assert [type(d).__name__ for d in state.decide(NOW)] == ["Reserve"]
    state.finished("t0")
    assert state.decide(NOW + 50) == [Start("t2", ("n1",))]


def test_victims_are_kept_up_to_date_across_passes() -> None:
    cluster = Cluster.single_pool([Node("n1", 4), Node("n2", 4)])

    def victim(tid: str, node: str, started: float) -> RunningTask:
        return RunningTask(tid, (Slot(node, 4),), started, NOW + 999, QoS.PREEMPT, True)

    state = PolicyState(cluster, running=[victim("old", "n1", 10), victim("new", "n2", 20)])
    urgent = PendingTask("u", Resources(cpus=4), 10, qos=QoS.URGENT)
    state.submit(urgent)
    assert state.decide(NOW)[0].task_id == "new"  # the most recent victim goes first
    state.finished("new")
    state.started(victim("newer", "n2", 30))
    assert state.decide(NOW)[0].task_id == "newer"
    state.finished("newer")
    assert state.decide(NOW) == [Start("u", ("n2",))]
    state.started(RunningTask("x", (Slot("n2", 4),), 40, NOW + 9, QoS.REGULAR))
    assert state.decide(NOW)[0].task_id == "old"


@st.composite
def _trace(draw: st.DrawFn) -> list[SwfJob]:
    jobs, t = [], 0.0
    for i in range(draw(st.integers(1, 20))):
        t += draw(st.integers(0, 40))
        run = float(draw(st.integers(0, 200)))
        asked = run + draw(st.integers(0, 100)) if draw(st.booleans()) else -1.0
        procs = draw(st.integers(1, 14))
        group = draw(st.integers(1, 3))
        queue = draw(st.sampled_from([0, 1]))
        jobs.append(SwfJob(i + 1, t, -1, run, procs, procs, asked, 1, group, group, queue, -1))
    return jobs


@settings(max_examples=60, deadline=None)
@given(_trace(), st.sampled_from(["none", "easy", "conservative"]))
def test_the_replay_runs_the_same_on_the_state(jobs: list[SwfJob], backfill: str) -> None:
    # The facility replay's policy seam: a PolicyState per pool, fed by the replay's events,
    # gives the replay exactly what the stateless pass gives it.
    config = PolicyConfig(backfill=backfill)

    def incremental(pool: str, cluster: Cluster) -> PoolPolicy:
        return PolicyState(cluster, config)

    expected = replay_facility(jobs, 3, 4, policy=stateless(config))
    assert replay_facility(jobs, 3, 4, policy=incremental) == expected
