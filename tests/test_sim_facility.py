"""Replay through the facility policy: hand trace, invariants, elastic plans, the seam, CLI."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hexflow.cli.main import app
from hexflow.errors import SpecError
from hexflow.model import QoS
from hexflow.scheduler.cluster import Cluster
from hexflow.scheduler.decisions import Decision, PendingTask, PolicyConfig, RunningTask
from hexflow.scheduler.elastic import parse_plan
from hexflow.scheduler.policy import decide
from hexflow.scheduler.swf import SwfJob, parse_swf, read_swf
from hexflow.sim import (
    FacilityResult,
    PoolPolicy,
    StatelessPolicy,
    SynthConfig,
    replay,
    replay_facility,
    stateless,
    synthesize,
)
from hexflow.sim.facility import _Usage
from hexflow.sim.synthetic import SYNTH_EPOCH
from hexflow.sim.tasks import to_task

KTH = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "KTH-SP2-1996-2.1-cln.swf.gz"

# 4 nodes of 4 cores. id submit run procs (requested time = run time), one group.
HAND = """\
; MaxProcs: 16
1 0 -1 100 4 -1 -1 4 100 -1 1 1 1 -1 1 -1 -1 -1
2 0 -1 50 8 -1 -1 8 50 -1 1 1 1 -1 1 -1 -1 -1
3 1 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1
4 2 -1 10 3 -1 -1 3 10 -1 1 1 1 -1 1 -1 -1 -1
5 3 -1 30 16 -1 -1 16 30 -1 1 1 1 -1 1 -1 -1 -1
6 4 -1 10 20 -1 -1 20 10 -1 1 1 1 -1 1 -1 -1 -1
7 5 -1 10 0 -1 -1 0 10 -1 1 1 1 -1 1 -1 -1 -1
"""
# job 1 fills n1; job 2 holds n2 and n3 whole; job 3 shares n4; job 4 (3 cores) waits for
# n4 until job 3 ends; job 5 (4 whole nodes) waits for everything; job 6 is too wide.
EXPECTED = {
    1: (0, ("n1",)),
    2: (0, ("n2", "n3")),
    3: (1, ("n4",)),
    4: (11, ("n4",)),
    5: (100, ("n1", "n2", "n3", "n4")),
}


def hand() -> FacilityResult:
    return replay_facility(parse_swf(HAND.splitlines()).jobs, 4, 4)


def test_hand_trace() -> None:
    result = hand()
    assert {r.job_id: (r.start, r.nodes) for r in result.jobs} == EXPECTED
    assert {r.pool for r in result.jobs} == {"batch"}
    assert (result.summary.rejected, result.summary.skipped) == (1, 1)
    assert result.jobs[4].end == 130
    metrics = result.metrics()
    assert metrics["scheduler"] == "facility" and metrics["nodes"] == 16
    pools = metrics["pools"]
    assert isinstance(pools, dict) and pools["batch"]["jobs"] == 5
    assert hand() == result  # deterministic


def test_job_to_task_mapping() -> None:
    job = SwfJob(9, 5.0, -1, 60.0, 24, 24, -1, 1, 3, 7, 0, -1)
    task = to_task(job, 8)
    assert (task.resources.nodes, task.resources.cpus, task.exclusive) == (3, 8, True)
    assert (task.qos, task.project, task.walltime, task.task_id) == (
        QoS.INTERACTIVE,
        "group7",
        60.0,
        "9",
    )
    small = to_task(SwfJob(1, 0.0, -1, 0.0, 2, 2, -1, 1, 4, -1, 3, -1), 8)
    assert (small.resources.nodes, small.resources.cpus, small.exclusive) == (1, 2, False)
    assert (small.qos, small.project, small.walltime) == (QoS.REGULAR, "user4", 1.0)


def test_bad_arguments() -> None:
    jobs = parse_swf(HAND.splitlines()).jobs
    with pytest.raises(SpecError, match="at least one node"):
        replay_facility(jobs, 0)
    with pytest.raises(SpecError, match="at least one core"):
        replay_facility(jobs, 4, 0)
    plan = parse_plan({"pools": [{"name": "a", "nodes": "rest"}]}, 8)
    with pytest.raises(SpecError, match="plan is for 8 nodes"):
        replay_facility(jobs, 4, 4, plan=plan)
    empty = replay_facility([], 4, 4)
    assert (empty.jobs, empty.summary.makespan) == ((), 0.0)


def _check_capacity(result: FacilityResult, jobs: Sequence[SwfJob], cores: int) -> None:
    """No node ever holds more than its cores, exclusive work holds a node alone, and work
    of two pools never shares a node at the same time."""
    by_id = {j.job_id: j for j in jobs}
    events: dict[str, list[tuple[float, int, float, bool, str]]] = {}
    for row in result.jobs:
        assert row.start >= row.submit
        assert row.end == row.start + by_id[row.job_id].run_time  # never cut short
        exclusive = len(row.nodes) > 1 or row.procs > cores
        use = float(cores) if exclusive else float(row.procs)
        if row.end == row.start:
            continue  # holds nothing
        for node in row.nodes:
            events.setdefault(node, []).append((row.start, 1, use, exclusive, row.pool))
            events.setdefault(node, []).append((row.end, 0, use, exclusive, row.pool))
    for node, timeline in events.items():
        timeline.sort(key=lambda e: (e[0], e[1]))  # ends before starts at one instant
        used, holders, exclusive_holders = 0.0, 0, 0
        pools: dict[str, int] = {}
        for _, starting, use, exclusive, pool in timeline:
            sign = 1 if starting else -1
            used += sign * use
            holders += sign
            exclusive_holders += sign if exclusive else 0
            pools[pool] = pools.get(pool, 0) + sign
            assert used <= cores + 1e-9, node
            assert exclusive_holders == 0 or holders == 1, node
            assert sum(1 for n in pools.values() if n > 0) <= 1, node


@st.composite
def traces(draw: st.DrawFn) -> list[SwfJob]:
    jobs = []
    t = 0.0
    for i in range(draw(st.integers(1, 25))):
        t += draw(st.integers(0, 40))
        run = float(draw(st.integers(0, 200)))
        asked = run + draw(st.integers(0, 100)) if draw(st.booleans()) else -1.0
        procs = draw(st.integers(1, 14))
        group = draw(st.integers(1, 3))
        queue = draw(st.sampled_from([0, 1]))
        jobs.append(SwfJob(i + 1, t, -1, run, procs, procs, asked, 1, group, group, queue, -1))
    return jobs


@settings(max_examples=120, deadline=None)
@given(traces(), st.booleans())
def test_never_over_allocates_and_runs_every_job(jobs: list[SwfJob], backfill: bool) -> None:
    policy = stateless(PolicyConfig(backfill=backfill))
    result = replay_facility(jobs, 3, 4, policy=policy)
    assert result.summary.rejected == sum(1 for j in jobs if j.procs > 12)
    assert len(result.jobs) == sum(1 for j in jobs if j.procs <= 12)
    _check_capacity(result, jobs, 4)
    assert replay_facility(jobs, 3, 4, policy=policy) == result


PLAN = {
    "pools": [
        {
            "name": "interactive",
            "qos": ["interactive"],
            "nodes": 2,
            "windows": [{"days": "mon-fri", "hours": "08-18", "nodes": 6}],
        },
        {"name": "batch", "nodes": "rest"},
    ]
}


@pytest.fixture(scope="module")
def week() -> tuple[list[SwfJob], FacilityResult]:
    trace = synthesize(SynthConfig(jobs=700, cores=128, seed=5, interactive=0.3, load=0.9))
    plan = parse_plan(PLAN, 16)
    result = replay_facility(trace.jobs, 16, 8, plan=plan, clock_origin=trace.clock_origin)
    return list(trace.jobs), result


def test_plan_routes_resizes_and_never_kills(week: tuple[list[SwfJob], FacilityResult]) -> None:
    jobs, result = week
    assert len(result.jobs) == len(jobs)
    pool_of = {r.job_id: r.pool for r in result.jobs}
    assert all(pool_of[j.job_id] == ("interactive" if j.queue == 0 else "batch") for j in jobs)
    _check_capacity(result, jobs, 8)
    reports = {p.name: p for p in result.pools}
    assert (reports["interactive"].fewest_nodes, reports["interactive"].most_nodes) == (2, 6)
    assert reports["batch"].most_nodes == 14
    assert reports["batch"].fewest_nodes >= 10  # drained nodes stay until their work ends
    assert 0 < reports["batch"].utilization <= 1
    # every node-hour of the replay belongs to one pool: 16 nodes over the whole span
    hours = sum(p.node_hours for p in result.pools)
    assert hours == pytest.approx(16 * result.summary.makespan / 3600, rel=1e-6)


def test_plan_pools_follow_the_clock(week: tuple[list[SwfJob], FacilityResult]) -> None:
    _, result = week
    # Work starts only on UP nodes: in a weekday's 08-18 window batch has 10 of them, so the
    # batch jobs started then use at most 10 distinct nodes that day; and more than 10 on
    # some night or weekend (it has 14 then).
    by_day: dict[tuple[int, bool], set[str]] = {}
    for r in result.jobs:
        if r.pool != "batch":
            continue
        local = SYNTH_EPOCH + r.start
        day = int(local // 86400)
        weekday = (day + 3) % 7 < 5  # 1970-01-01 was a Thursday
        window = weekday and 8 <= local % 86400 / 3600 < 18
        by_day.setdefault((day, window), set()).update(r.nodes)
    assert any(window for _, window in by_day)
    assert all(len(nodes) <= 10 for (_, window), nodes in by_day.items() if window)
    assert any(len(nodes) > 10 for (_, window), nodes in by_day.items() if not window)


def test_usage_keeps_the_order_of_decayed_usage() -> None:
    usage = _Usage(half_life=100.0)
    usage.charge("a", 10.0, 0.0)
    usage.charge("b", 6.0, 100.0)  # a decayed to 5 by then: b is ahead
    assert usage["b"] > usage["a"]
    usage.charge("c", 1.0, 100.0 * 600)  # far later: rescaled, still finite and ordered
    assert all(v < float("inf") for v in usage.values())
    assert usage["c"] > usage["b"] > usage["a"] >= 0


class Recording(StatelessPolicy):
    """The default policy, with the events it was told counted."""

    events: list[str]

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        self.events = []

    def submit(self, task: PendingTask) -> None:
        self.events.append("submit")
        super().submit(task)

    def started(self, task: RunningTask) -> None:
        self.events.append("started")
        super().started(task)

    def finished(self, task_id: str) -> None:
        self.events.append("finished")
        super().finished(task_id)

    def set_usage(self, usage: Mapping[str, float]) -> None:
        self.events.append("usage")
        super().set_usage(usage)

    def decide(self, now: float) -> Sequence[Decision]:
        self.events.append("decide")
        # what an incremental state must match: the stateless pass on the same input
        assert super().decide(now) == decide(
            self.cluster, list(self.queue.values()), list(self.running.values()), self.usage, now
        )
        return super().decide(now)


def test_the_policy_seam_gets_every_event_per_pool() -> None:
    made: dict[str, Recording] = {}

    def factory(pool: str, cluster: Cluster) -> PoolPolicy:
        made[pool] = Recording(cluster)
        return made[pool]

    result = replay_facility(parse_swf(HAND.splitlines()).jobs, 4, 4, policy=factory)
    assert {r.job_id: (r.start, r.nodes) for r in result.jobs} == EXPECTED
    events = made["batch"].events
    assert set(made) == {"batch"}
    assert events.count("submit") == events.count("started") == events.count("finished") == 5
    assert events.count("decide") == result.passes
    assert not made["batch"].queue and not made["batch"].running  # all told, all done


@pytest.mark.skipif(not KTH.exists(), reason="the KTH-SP2 log is not on this machine")
def test_kth_prefix_through_the_facility_policy() -> None:
    jobs = read_swf(KTH).jobs[:1500]
    result = replay_facility(jobs, 100, 1)
    assert len(result.jobs) == 1500
    _check_capacity(result, jobs, 1)
    fcfs = replay(jobs, "fcfs", 100)
    assert result.summary.mean_wait < fcfs.mean_wait


# -- CLI ------------------------------------------------------------------------------


def test_cli_facility_json_and_jobs_out(tmp_path: Path) -> None:
    log = tmp_path / "hand.swf"
    log.write_text(HAND)
    rows = tmp_path / "rows.csv"
    runner = CliRunner()
    args = ["sim", "replay", str(log), "--scheduler", "facility", "--nodes", "4"]
    done = runner.invoke(app, [*args, "--cores-per-node", "4", "--json", "--jobs-out", str(rows)])
    assert done.exit_code == 0, done.output
    metrics = json.loads(done.stdout)
    assert (metrics["scheduler"], metrics["jobs"], metrics["rejected"]) == ("facility", 5, 1)
    assert metrics["pools"]["batch"]["nodes_max"] == 4
    with rows.open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["id", "submit", "start", "end", "procs", "pool", "nodes"]
    assert {int(r["id"]): (float(r["start"]), tuple(r["nodes"].split())) for r in table} == {
        k: (float(s), n) for k, (s, n) in EXPECTED.items()
    }
    shown = runner.invoke(app, [*args, "--cores-per-node", "4", "--policy", "fcfs"])
    assert shown.exit_code == 0, shown.output
    assert "pools" in shown.stdout and "decision passes" in shown.stdout


def test_cli_facility_with_a_plan(tmp_path: Path) -> None:
    log = tmp_path / "s.swf"
    runner = CliRunner()
    made = runner.invoke(
        app, ["sim", "synth", "--jobs", "200", "--cores", "128", "--seed", "2", "-o", str(log)]
    )
    assert made.exit_code == 0, made.output
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps(PLAN))  # JSON is YAML too
    done = runner.invoke(
        app,
        ["sim", "replay", str(log), "--scheduler", "facility", "--cores-per-node", "8"]
        + ["--plan", str(plan), "--json"],
    )
    assert done.exit_code == 0, done.output
    metrics = json.loads(done.stdout)
    assert set(metrics["pools"]) == {"interactive", "batch"}
    assert metrics["nodes"] == 128 and metrics["jobs"] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "slurm"], "unknown scheduler"),
        (["--plan", "PLAN"], "facility policy only"),
        (["--cores-per-node", "4"], "facility policy only"),
        (["--scheduler", "facility", "--cores-per-node", "0"], "--cores-per-node"),
        (["--scheduler", "facility", "--policy", "conservative"], "no 'conservative' mode"),
        (["--scheduler", "facility", "--plan", "missing.yaml"], "cannot read plan"),
        (["--scheduler", "facility", "--plan", "BADYAML"], "line 2"),
        (["--scheduler", "facility", "--plan", "BIGPLAN"], "ask for 50 nodes"),
        (["--scheduler", "facility", "--plan", "BADHOURS"], "pools[0].windows[0].hours"),
        (["--scheduler", "facility", "--nodes", "-3"], "--nodes"),
    ],
)
def test_cli_facility_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    log = tmp_path / "hand.swf"
    log.write_text(HAND)
    files = {
        "PLAN": "pools: [{name: a, nodes: rest}]\n",
        "BADYAML": "pools:\n\t- name: a\n",
        "BIGPLAN": "pools: [{name: a, nodes: 50}]\n",
        "BADHOURS": "pools: [{name: a, nodes: 1, windows: [{hours: 9to5, nodes: 2}]}]\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = [str(tmp_path / a) if a in files else a for a in args]
    done = CliRunner().invoke(app, ["sim", "replay", str(log), *args])
    assert done.exit_code == 2, done.output
    assert message in done.output


def test_cli_facility_malformed_log_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.swf"
    bad.write_text("; MaxProcs: 4\n1 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1\n2 5 -1 x 2\n")
    done = CliRunner().invoke(app, ["sim", "replay", str(bad), "--scheduler", "facility"])
    assert done.exit_code == 2
    assert "line 3" in done.output


def test_a_task_wider_than_its_pool_now_waits_for_the_pool_to_grow() -> None:
    plan = parse_plan(
        {
            "pools": [
                {"name": "day", "nodes": 0, "windows": [{"hours": "09-17", "nodes": 4}]},
                {"name": "batch", "nodes": "rest"},
            ]
        },
        6,
    )
    jobs = [
        SwfJob(1, 0.0, -1, 100.0, 5, 5, 100.0, 1, 1, 1, 1, -1),  # 5 nodes; batch has 2 now
        SwfJob(2, 0.0, -1, 100.0, 1, 1, 100.0, 1, 1, 1, 1, -1),
    ]
    # trace time 0 is a Monday 09:00: the day pool holds 4 of the 6 nodes until 17:00
    result = replay_facility(jobs, 6, 1, plan=plan, clock_origin=SYNTH_EPOCH + 9 * 3600)
    rows = {r.job_id: r for r in result.jobs}
    assert result.summary.rejected == 0
    assert (rows[2].start, rows[2].pool) == (0.0, "batch")
    assert (rows[1].start, rows[1].pool, len(rows[1].nodes)) == (8 * 3600.0, "batch", 5)
    reports = {p.name: p for p in result.pools}
    assert (reports["batch"].fewest_nodes, reports["batch"].most_nodes) == (2, 6)
    assert (reports["day"].fewest_nodes, reports["day"].most_nodes) == (0, 4)
