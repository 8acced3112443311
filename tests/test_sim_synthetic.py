"""Synthetic traces: seeded, shaped like real logs, written as SWF that the reader reads back."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hexflow.cli.main import app
from hexflow.errors import SpecError
from hexflow.scheduler.swf import SwfTrace, format_swf, parse_swf, read_swf, write_swf
from hexflow.sim import SynthConfig, replay, synthesize
from hexflow.sim.synthetic import SYNTH_EPOCH

CONFIG = SynthConfig(jobs=4000, cores=4096, seed=7)


@pytest.fixture(scope="module")
def trace() -> SwfTrace:
    return synthesize(CONFIG)


def test_same_seed_same_trace_other_seed_other_trace(trace: SwfTrace) -> None:
    assert synthesize(CONFIG) == trace
    other = synthesize(SynthConfig(jobs=4000, cores=4096, seed=8))
    assert other.jobs != trace.jobs


def test_shapes_look_like_a_real_log(trace: SwfTrace) -> None:
    jobs = trace.jobs
    assert len(jobs) == 4000
    assert [j.job_id for j in jobs] == list(range(1, 4001))
    assert all(b.submit >= a.submit for a, b in zip(jobs, jobs[1:], strict=False))
    sizes = [j.procs for j in jobs]
    assert min(sizes) >= 1 and max(sizes) <= 4096 // 8
    powers = sum(1 for s in sizes if s & (s - 1) == 0)
    assert powers / len(sizes) > 0.75  # serial jobs and rounded sizes
    assert 0.15 < sum(1 for s in sizes if s == 1) / len(sizes) < 0.5
    # users overestimate: the request covers the run, usually by a lot
    assert all(j.requested_time >= j.run_time >= 1 for j in jobs)
    over = statistics.median(j.requested_time / j.run_time for j in jobs)
    assert over > 1.5
    killed = [j for j in jobs if j.status == 0]
    assert killed and all(j.run_time == j.requested_time for j in killed)
    # lognormal run times: the mean is well above the median
    runs = [j.run_time for j in jobs]
    assert statistics.mean(runs) > 2 * statistics.median(runs)
    # interactive share (queue 0): short and small
    interactive = [j for j in jobs if j.queue == 0]
    assert 0.1 < len(interactive) / len(jobs) < 0.2
    assert all(j.run_time <= 4 * 3600 and j.procs <= 64 for j in interactive)


def test_daily_cycle_and_load(trace: SwfTrace) -> None:
    jobs = trace.jobs
    hours = [int(j.submit % 86400 // 3600) for j in jobs]
    day = sum(1 for h in hours if 9 <= h < 17)
    night = sum(1 for h in hours if 0 <= h < 8)
    assert day > 3 * night
    weekend = sum(1 for j in jobs if int(j.submit // 86400) % 7 >= 5)
    assert weekend / len(jobs) < 2 / 7  # weekends are quieter
    span = jobs[-1].submit - jobs[0].submit
    offered = sum(j.procs * j.run_time for j in jobs) / (4096 * span)
    assert offered == pytest.approx(CONFIG.load, rel=0.05)


def test_round_trip_through_swf_text_and_files(trace: SwfTrace, tmp_path: Path) -> None:
    again = parse_swf(list(format_swf(trace)))
    assert again.jobs == trace.jobs
    assert again.max_procs == 4096
    assert again.clock_origin == SYNTH_EPOCH
    for name in ("t.swf", "t.swf.gz"):
        write_swf(trace, tmp_path / name)
        assert read_swf(tmp_path / name) == again


def test_replays_and_backfilling_helps(trace: SwfTrace) -> None:
    fcfs = replay(trace.jobs, "fcfs", 4096)
    easy = replay(trace.jobs, "easy", 4096)
    assert len(easy.jobs) == 4000 and easy.rejected == 0
    assert easy.mean_wait < fcfs.mean_wait


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (SynthConfig(jobs=0, cores=10), "jobs"),
        (SynthConfig(jobs=5, cores=0), "cores"),
        (SynthConfig(jobs=5, cores=10, load=0), "load"),
        (SynthConfig(jobs=5, cores=10, load=math.inf), "load"),
        (SynthConfig(jobs=5, cores=10, max_job_cores=11), "max_job_cores"),
        (SynthConfig(jobs=5, cores=10, interactive=1.5), "interactive"),
        (SynthConfig(jobs=5, cores=10, max_walltime=10), "max_walltime"),
    ],
)
def test_bad_configs(config: SynthConfig, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        synthesize(config)
    assert caught.value.fields["field"] == field


def test_tiny_machines() -> None:
    one = synthesize(SynthConfig(jobs=50, cores=1, seed=1))
    assert {j.procs for j in one.jobs} == {1}
    assert len(synthesize(SynthConfig(jobs=1, cores=3, interactive=1.0)).jobs) == 1


def test_cli_synth_writes_a_log_the_replay_reads(tmp_path: Path) -> None:
    out = tmp_path / "s.swf.gz"
    runner = CliRunner()
    args = ["sim", "synth", "--jobs", "300", "--cores", "256", "--seed", "4", "-o", str(out)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "wrote 300 jobs" in done.output
    assert read_swf(out).jobs == synthesize(SynthConfig(jobs=300, cores=256, seed=4)).jobs
    replayed = runner.invoke(app, ["sim", "replay", str(out), "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert '"jobs": 300' in replayed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0", "--cores", "8"], "jobs must be at least 1"),
        (["--jobs", "5", "--cores", "8", "--load", "-1"], "load"),
        (["--jobs", "5", "--cores", "8", "--max-job-cores", "9"], "max_job_cores"),
        (["--jobs", "five", "--cores", "8"], "Usage"),
        (["--jobs", "5", "--cores", "8", "-o", "/nonexistent/dir/x.swf"], "cannot write"),
    ],
)
def test_cli_synth_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "x.swf")]
    done = CliRunner().invoke(app, ["sim", "synth", *args])
    assert done.exit_code == 2
    assert message in done.output
