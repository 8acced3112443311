"""Replays in virtual time: hand-computed starts, metrics, properties, the KTH-SP2 log, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hexflow.cli.main import app
from hexflow.errors import SpecError
from hexflow.scheduler.swf import SwfJob, parse_swf, read_swf
from hexflow.sim import replay

KTH = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "KTH-SP2-1996-2.1-cln.swf.gz"

# 10 processors. id submit run procs (requested time = run time).
HAND = """\
; MaxProcs: 10
1 0 -1 100 6 -1 -1 6 100 -1 1 1 1 -1 -1 -1 -1 -1
2 1 -1 100 8 -1 -1 8 100 -1 1 1 1 -1 -1 -1 -1 -1
3 2 -1 300 9 -1 -1 9 300 -1 1 1 1 -1 -1 -1 -1 -1
4 3 -1 250 2 -1 -1 2 250 -1 1 1 1 -1 -1 -1 -1 -1
5 4 -1 90 4 -1 -1 4 90 -1 1 1 1 -1 -1 -1 -1 -1
6 5 -1 10 11 -1 -1 11 10 -1 1 1 1 -1 -1 -1 -1 -1
"""

EXPECTED = {
    # FCFS: each job waits for every one before it.
    "fcfs": {1: 0, 2: 100, 3: 200, 4: 500, 5: 500},
    # EASY: job 4 fits in the 2 extra processors at job 2's reservation, so it starts at 3
    # and pushes job 3 (not the head then) to 253; job 5 never fits a backfill window.
    "easy": {1: 0, 2: 100, 3: 253, 4: 3, 5: 553},
    # conservative: job 4 would delay job 3's reservation (200); job 5 ends before 100.
    "conservative": {1: 0, 2: 100, 3: 200, 4: 500, 5: 4},
}


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_hand_trace_starts(policy: str) -> None:
    trace = parse_swf(HAND.splitlines())
    result = replay(trace.jobs, policy, 10)
    assert {r.job_id: r.start for r in result.jobs} == EXPECTED[policy]
    assert result.rejected == 1  # job 6 asks for 11 of 10 processors
    waits = [EXPECTED[policy][i] - (i - 1) for i in range(1, 6)]
    assert result.mean_wait == pytest.approx(sum(waits) / 5)
    ends = {r.job_id: r.end for r in result.jobs}
    assert ends[4] == EXPECTED[policy][4] + 250


def test_hand_trace_metrics() -> None:
    result = replay(parse_swf(HAND.splitlines()).jobs, "easy", 10)
    work = 100 * 6 + 100 * 8 + 300 * 9 + 250 * 2 + 90 * 4
    assert result.makespan == 553 + 90
    assert result.utilization == pytest.approx(work / (10 * 643))
    slow = [1.0, 199 / 100, 551 / 300, 250 / 250, (549 + 90) / 90]
    assert result.mean_bounded_slowdown == pytest.approx(sum(slow) / 5)
    assert result.metrics()["jobs"] == 5


def test_bad_arguments() -> None:
    with pytest.raises(SpecError, match="unknown scheduling policy"):
        replay([], "sjf", 10)
    with pytest.raises(SpecError, match="at least one processor"):
        replay([], "easy", 0)
    empty = replay([], "easy", 4)
    assert (empty.jobs, empty.makespan) == ((), 0.0)


@st.composite
def traces(draw: st.DrawFn) -> list[SwfJob]:
    jobs = []
    t = 0.0
    for i in range(draw(st.integers(1, 30))):
        t += draw(st.integers(0, 50))
        run = float(draw(st.integers(0, 300)))
        asked = run + draw(st.integers(0, 100)) if draw(st.booleans()) else -1.0
        procs = draw(st.integers(1, 9))
        jobs.append(SwfJob(i + 1, t, -1, run, procs, procs, asked, 1, 1, 1, -1, -1))
    return jobs


@settings(max_examples=150, deadline=None)
@given(traces(), st.sampled_from(["fcfs", "easy", "conservative"]))
def test_replay_never_over_allocates(jobs: list[SwfJob], policy: str) -> None:
    result = replay(jobs, policy, 8)
    by_id = {j.job_id: j for j in jobs}
    assert result.rejected == sum(1 for j in jobs if j.procs > 8)
    events = sorted(
        [(r.end, -r.procs) for r in result.jobs] + [(r.start, r.procs) for r in result.jobs]
    )  # at equal times the end (negative) comes first
    busy = 0
    for _, delta in events:
        busy += delta
        assert busy <= 8
    for row in result.jobs:
        assert row.start >= row.submit
        assert row.end == row.start + by_id[row.job_id].run_time
    assert replay(jobs, policy, 8) == result


@pytest.mark.skipif(not KTH.exists(), reason="the KTH-SP2 log is not on this machine")
def test_kth_easy_beats_fcfs() -> None:
    jobs = read_swf(KTH).jobs
    fcfs = replay(jobs, "fcfs", 100)
    easy = replay(jobs, "easy", 100)
    assert len(easy.jobs) == len(fcfs.jobs) == 27992
    assert easy.mean_wait < fcfs.mean_wait
    assert easy.mean_bounded_slowdown < fcfs.mean_bounded_slowdown


def test_cli_json_and_jobs_out(tmp_path: Path) -> None:
    log = tmp_path / "hand.swf"
    log.write_text(HAND)
    rows = tmp_path / "rows.csv"
    runner = CliRunner()
    done = runner.invoke(
        app, ["sim", "replay", str(log), "--policy", "easy", "--json", "--jobs-out", str(rows)]
    )
    assert done.exit_code == 0, done.output
    metrics = json.loads(done.stdout)
    assert (metrics["policy"], metrics["nodes"], metrics["jobs"]) == ("easy", 10, 5)
    assert metrics["rejected"] == 1
    with rows.open() as handle:
        table = list(csv.DictReader(handle))
    assert {int(r["id"]): float(r["start"]) for r in table} == EXPECTED["easy"]
    assert set(table[0]) == {"id", "submit", "start", "end", "procs"}
    table_run = runner.invoke(app, ["sim", "replay", str(log), "--policy", "fcfs", "--nodes", "12"])
    assert table_run.exit_code == 0
    assert "mean_wait_s" in table_run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.swf"], "not found"),
        (["LOG", "--policy", "sjf"], "unknown policy"),
        (["LOG", "--nodes", "0"], "--nodes"),
        (["LOG", "--nodes", "many"], "Usage"),  # Click rejects it before the command runs
        (["BAD"], "line 2"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    log = tmp_path / "hand.swf"
    log.write_text(HAND)
    bad = tmp_path / "bad.swf"
    bad.write_text("; x\n1 2 3\n")
    args = [str(log) if a == "LOG" else str(bad) if a == "BAD" else a for a in args]
    done = CliRunner().invoke(app, ["sim", "replay", *args])
    assert done.exit_code == 2
    assert message in done.output
