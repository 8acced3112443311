"""Pilot jobs on a real Slurm (the session's private cluster, tests/slurm_private.py): many
tasks through a few allocations, each pilot within its walltime, and a pilot whose
heartbeat stops (frozen with SIGSTOP, its job still RUNNING in Slurm) cancelled in Slurm
with its task requeued on another pilot."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from hexflow.executors.pilot import PilotConfig, PilotExecutor
from hexflow.executors.pilot.channel import PILOTS
from hexflow.executors.slurm.commands import SlurmCommands
from hexflow.executors.slurm.provider import SlurmProvider
from hexflow.model import Resources
from hexflow.store import Store
from tests import slurm_private
from tests.executor_contract import drive, shell_spec
from tests.slurm_private import resume_node

private_slurm = slurm_private.private_slurm  # the fixture

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def pilots(tmp_path: Path, conf: str, **options: object) -> PilotExecutor:
    values: dict[str, object] = {
        "channel_dir": str(tmp_path / "pilots"),
        "cpus": 4,
        "max_pilots": 2,
        "walltime": 300.0,
        "idle_timeout": 5.0,
        "task_walltime": 60.0,
        "kill_grace": 0.5,
        "scale_interval": 0.3,
    }
    values.update(options)
    provider = SlurmProvider(
        SlurmCommands(conf=conf), job_dir=str(tmp_path / "jobs"), partition="regular"
    )
    return PilotExecutor(PilotConfig(**values), provider)  # type: ignore[arg-type]


def job_state(conf: str, job: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job],
        env={**os.environ, "SLURM_CONF": conf},
        capture_output=True,
        text=True,
    )
    for word in out.stdout.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return "GONE"


def test_many_small_tasks_through_a_few_slurm_allocations(
    tmp_path: Path, private_slurm: str
) -> None:
    resume_node(private_slurm)
    specs = [shell_spec(f"t{i}", f"sleep 0.2; echo {i}") for i in range(40)]
    run, recs = drive(pilots(tmp_path, private_slurm), specs, tmp_path, timeout=180)
    assert run.state.value == "succeeded"
    jobs = {(r.worker or "").rpartition("@")[2] for r in recs.values()}
    assert 1 <= len(jobs) <= 2 and all(j.isdigit() for j in jobs)  # Slurm job ids
    logs = list((tmp_path / "jobs").glob("p*.sh"))
    assert logs and "#SBATCH --cpus-per-task=4" in logs[0].read_text()


def test_slurm_pilots_keep_to_their_walltime(tmp_path: Path, private_slurm: str) -> None:
    """Pilots of 20 s (Slurm's --time is one minute; the pilot keeps to 20 s): tasks of
    5 s with a 6 s walltime, 3 per pilot at most; none stopped by a pilot's end."""
    resume_node(private_slurm)
    ex = pilots(tmp_path, private_slurm, cpus=1, max_pilots=1, walltime=20.0, idle_timeout=2.0)
    stamp = f"date +%s.%N >> {tmp_path}/span.$HEXFLOW_TASK_ID"
    specs = [
        shell_spec(f"t{i}", f"{stamp}; sleep 5; {stamp}", resources=Resources(walltime=6))
        for i in range(5)
    ]
    run, recs = drive(ex, specs, tmp_path, timeout=200)
    assert run.state.value == "succeeded", {k: (r.reason, r.error) for k, r in recs.items()}
    assert all(r.attempt == 1 and r.preemptions == 0 for r in recs.values())
    by_pilot: dict[str, list[tuple[float, float]]] = {}
    for task_id, rec in recs.items():
        start, end = map(float, (tmp_path / f"span.{task_id}").read_text().split())
        by_pilot.setdefault(rec.worker or "", []).append((start, end))
    assert len(by_pilot) >= 2
    for worker, spans in by_pilot.items():
        assert len(spans) <= 3, worker
        assert max(e for _, e in spans) - min(s for s, _ in spans) < 20.0, worker


def test_a_frozen_slurm_pilot_is_cancelled_and_its_task_requeued(
    tmp_path: Path, private_slurm: str
) -> None:
    resume_node(private_slurm)
    marker = tmp_path / "started"
    spec = shell_spec(
        "sim", f'echo "$HEXFLOW_ATTEMPT" >> {marker}; sleep 8 && echo done >> {tmp_path}/done'
    )
    ex = pilots(tmp_path, private_slurm, cpus=1, max_pilots=1, heartbeat_timeout=3.0)
    frozen: list[str] = []

    async def freeze(store: Store, run_id: str, workdir: Path) -> None:
        while not marker.exists():
            await asyncio.sleep(0.05)
        pilot = next(p for p in ex._pilots.values() if p.job)
        hello = json.loads(Path(ex.channel.path(PILOTS, f"{pilot.name}.json")).read_text())
        assert pilot.job is not None
        frozen.append(pilot.job)
        os.kill(int(hello["pid"]), signal.SIGSTOP)  # alive for Slurm, silent for hexflow

    run, recs = drive(ex, [spec], tmp_path, during=freeze, timeout=180)
    rec = recs["sim"]
    assert run.state.value == "succeeded", (rec.reason, rec.error)
    assert rec.attempt == 2 and rec.preemptions == 1
    assert (tmp_path / "done").read_text() == "done\n"
    assert not (rec.worker or "").endswith(f"@{frozen[0]}")
    assert job_state(private_slurm, frozen[0]) in ("CANCELLED", "GONE")
