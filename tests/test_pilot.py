"""Pilot jobs with pilots as local processes (LocalProvider): the executor contract, the
elastic rule, the channel's exactly-once handover, walltime respected, and a pilot whose
heartbeat stops being replaced with its tasks requeued. The same against real Slurm is in
tests/test_pilot_slurm.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hexflow.executors.base import Executor
from hexflow.executors.pilot import LocalProvider, PilotConfig, PilotExecutor
from hexflow.executors.pilot.channel import Channel, read_key, task_key
from hexflow.executors.pilot.strategy import PilotView, scale
from hexflow.model import Resources
from hexflow.store import Store
from tests.executor_contract import ExecutorContract, drive, python_spec, shell_spec

pytestmark = pytest.mark.timeout(180)


def pilots(tmp_path: Path, **options: object) -> PilotExecutor:
    values: dict[str, object] = {
        "channel_dir": str(tmp_path / "pilots"),
        "cpus": 2,
        "max_pilots": 2,
        "walltime": 300.0,
        "idle_timeout": 5.0,
        "task_walltime": 60.0,
        "kill_grace": 0.5,
        "scale_interval": 0.2,
    }
    values.update(options)
    return PilotExecutor(PilotConfig(**values), LocalProvider())  # type: ignore[arg-type]


class TestPilotExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Executor:
        return pilots(tmp_path)


# ---------------------------------------------------------------- pure parts
def test_task_keys_sort_by_class_then_submission_and_say_what_a_task_needs() -> None:
    urgent = task_key(0, 7, 42, 0.5, 1, 3 * 2**20 + 1, 90.4)
    regular = task_key(60, 3, 43, 2, 0, 0, None)
    assert sorted([regular, urgent]) == [urgent, regular]
    need = read_key(urgent + ".task")
    assert need is not None
    assert (need.token, need.cpus, need.gpus, need.memory, need.seconds) == (
        42,
        0.5,
        1,
        4 * 2**20,
        90.0,
    )
    assert read_key(regular + ".task").seconds is None  # type: ignore[union-attr]
    assert read_key(".tmp-abc") is None and read_key("0-1-2.task") is None


def test_a_task_is_claimed_by_one_pilot_only(tmp_path: Path) -> None:
    channel = Channel(str(tmp_path / "ch"))
    channel.create()
    for pilot in ("p1", "p2"):
        os.makedirs(channel.path("claimed", pilot))
    key = task_key(50, 1, 1, 1, 0, 0, 10)
    channel.put(channel.path("queue", key + ".task"), {"x": 1})
    assert channel.claim(key, "p1") and not channel.claim(key, "p2")
    assert not channel.withdraw(key)  # claimed: too late to take back
    key2 = task_key(50, 2, 2, 1, 0, 0, 10)
    channel.put(channel.path("queue", key2 + ".task"), {"x": 2})
    assert channel.withdraw(key2) and not channel.claim(key2, "p2")
    assert [n.token for n in channel.claimed("p1")] == [1] and channel.queued() == []


def test_scale_adds_pilots_for_the_backlog_and_withdraws_pending_ones_when_it_is_gone() -> None:
    four = [(1.0, 10.0)] * 4
    assert scale(four, [], cpus=2, min_pilots=0, max_pilots=8).submit == 2
    assert scale([(1.0, 10.0)] * 40, [], cpus=2, min_pilots=0, max_pilots=3).submit == 3
    busy = PilotView("p1", "active", 2, free_cpus=0, remaining=100)
    waiting = PilotView("p2", "pending", 2)
    assert scale(four, [busy, waiting], cpus=2, min_pilots=0, max_pilots=8).submit == 1
    # a pilot with too little time left for any queued task does not count: replace it
    ending = PilotView("p3", "active", 2, free_cpus=2, remaining=5)
    assert scale([(1.0, 10.0)], [ending], cpus=2, min_pilots=0, max_pilots=1).submit == 1
    idle = scale([], [busy, waiting], cpus=2, min_pilots=0, max_pilots=8)
    assert idle.submit == 0 and idle.withdraw == ("p2",)
    assert scale([], [], cpus=2, min_pilots=1, max_pilots=8).submit == 1


# ---------------------------------------------------------------- behaviour
def test_many_tasks_run_in_few_pilots_within_each_pilots_cpus(tmp_path: Path) -> None:
    specs = [
        shell_spec(
            f"t{i}", f"date +%s.%N > {tmp_path}/s.t{i}; sleep 0.3; date +%s.%N > {tmp_path}/e.t{i}"
        )
        for i in range(16)
    ]
    run, recs = drive(pilots(tmp_path, cpus=2, max_pilots=2), specs, tmp_path)
    assert run.state.value == "succeeded"
    workers = {r.worker for r in recs.values()}
    assert 1 <= len(workers) <= 2 and all(w and w.startswith("pilot:p") for w in workers)
    for worker in workers:  # never more tasks at once on a pilot than its 2 cpus
        spans = [
            (float((tmp_path / f"s.{t}").read_text()), float((tmp_path / f"e.{t}").read_text()))
            for t, r in recs.items()
            if r.worker == worker
        ]
        for start, _ in spans:
            assert sum(1 for s, e in spans if s <= start < e) <= 2


def test_a_pilot_never_takes_a_task_that_would_outlive_it(tmp_path: Path) -> None:
    """Pilots of 8 s (6 s usable after the margin): tasks of 2.5 s (walltime 3 s) on one
    cpu fit two per pilot; the rest need new pilots. None is stopped by a pilot's end."""
    ex = pilots(tmp_path, cpus=1, max_pilots=1, walltime=8.0, idle_timeout=1.0)
    stamp = f"date +%s.%N >> {tmp_path}/span.$HEXFLOW_TASK_ID"
    specs = [
        shell_spec(f"t{i}", f"{stamp}; sleep 2.5; {stamp}", resources=Resources(walltime=3))
        for i in range(5)
    ]
    run, recs = drive(ex, specs, tmp_path, timeout=120)
    assert run.state.value == "succeeded", {k: (r.reason, r.error) for k, r in recs.items()}
    assert all(r.attempt == 1 and r.preemptions == 0 for r in recs.values())
    by_pilot: dict[str, list[tuple[float, float]]] = {}
    for task_id, rec in recs.items():
        start, end = map(float, (tmp_path / f"span.{task_id}").read_text().split())
        by_pilot.setdefault(rec.worker or "", []).append((start, end))
    assert len(by_pilot) >= 3  # 5 tasks, at most 2 per pilot
    for spans in by_pilot.values():
        assert len(spans) <= 2
        assert max(e for _, e in spans) - min(s for s, _ in spans) < 8.0


def test_a_task_longer_than_a_pilot_lives_fails_at_once_with_a_clear_error(
    tmp_path: Path,
) -> None:
    specs = [
        shell_spec("long", "true", resources=Resources(walltime=3600)),
        shell_spec("unknown", "true"),  # no time limit: task_walltime (60 s) is fine
        shell_spec("wide", "true", resources=Resources(cpus=4)),
    ]
    run, recs = drive(pilots(tmp_path, walltime=600.0), specs, tmp_path)
    assert recs["unknown"].state.value == "succeeded"
    long = recs["long"]
    assert long.state.value == "failed" and long.reason == "launch_failed"
    assert "needs 3600 s (time limit)" in (long.error or "")
    assert "at most 588 s of its 600 s walltime" in (long.error or "")
    assert "a pilot has cpus=2" in (recs["wide"].error or "")


def test_a_silent_pilot_is_replaced_and_its_task_requeued(tmp_path: Path) -> None:
    """The pilot running the task is frozen (SIGSTOP: alive, but no heartbeat): after the
    heartbeat timeout its allocation is cancelled and the task runs on a new pilot, once
    to completion, not charged as a retry."""
    marker = tmp_path / "started"
    spec = shell_spec(
        "sim",
        f'echo "$HEXFLOW_ATTEMPT $PPID" >> {marker}; sleep 4 && echo done >> {tmp_path}/done',
    )
    ex = pilots(tmp_path, cpus=1, max_pilots=1, heartbeat_timeout=2.0)
    frozen: list[int] = []

    async def freeze(store: Store, run_id: str, workdir: Path) -> None:
        import asyncio

        while not marker.exists():
            await asyncio.sleep(0.05)
        pilot = next(p for p in ex._pilots.values() if p.job)  # its job id is its pid
        assert pilot.job is not None
        frozen.append(int(pilot.job))
        os.kill(int(pilot.job), signal.SIGSTOP)

    t0 = time.monotonic()
    run, recs = drive(ex, [spec], tmp_path, during=freeze, timeout=90)
    rec = recs["sim"]
    assert run.state.value == "succeeded", (rec.reason, rec.error)
    assert rec.attempt == 2 and rec.preemptions == 1  # requeued, not a retry (retries=0)
    assert (tmp_path / "done").read_text() == "done\n"  # completed once
    assert [line.split()[0] for line in marker.read_text().splitlines()] == ["1", "2"]
    assert rec.worker is not None and not rec.worker.endswith(f"@{frozen[0]}")
    assert time.monotonic() - t0 < 60
    with pytest.raises(ProcessLookupError):  # the frozen pilot was cancelled
        for _ in range(50):
            os.kill(frozen[0], 0)
            time.sleep(0.1)


def test_python_tasks_and_results_through_pilots(tmp_path: Path) -> None:
    def square(x: int) -> int:
        return x * x

    def add(*xs: int) -> int:
        return sum(xs)

    from hexflow.model.refs import TaskRef

    parts = [python_spec(f"sq{i}", square, i) for i in range(6)]
    total = python_spec("total", add, *[TaskRef(p.id) for p in parts])
    run, recs = drive(pilots(tmp_path), [*parts, total], tmp_path)
    import pickle

    assert run.state.value == "succeeded"
    assert pickle.loads(recs["total"].result or b"") == sum(i * i for i in range(6))
