"""The multi-site engine on two local sites: routing by priority, pins and allowed sites,
failover when a site goes down (queued work moves at once, running work is stopped and
resubmitted, nothing lost, nothing run twice to completion), planned outages drained
before they start, and every move recorded on the task and in the event log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from hexflow.engine import Engine
from hexflow.engine.sites import SiteBinding, SiteSet
from hexflow.errors import SpecError
from hexflow.executors.local import LocalExecutor
from hexflow.flow.sites import Overrides, SiteMonitor
from hexflow.model import Resources, RunRecord, TaskRecord, TaskSpec
from hexflow.model.events import SITE_STATE_CHANGED, TASK_MOVED
from hexflow.model.sites import Outage, SiteSpec, SiteState
from hexflow.store import MemoryStore, Store
from tests.executor_contract import shell_spec

pytestmark = pytest.mark.timeout(120)

During = Callable[[Store, str], Awaitable[None]]


def sites(
    tmp_path: Path,
    *specs: SiteSpec,
    cpus: float = 2,
    check: float = 0.1,
    move_timeout: float = 10.0,
) -> tuple[SiteSet, Overrides]:
    overrides = Overrides(tmp_path / ".hexflow")
    bindings = [
        SiteBinding(
            s.name,
            LocalExecutor(cpus=cpus, scratch_dir=str(tmp_path / "scratch" / s.name), kill_grace=1),
            s,
        )
        for s in specs
    ]
    monitor = SiteMonitor(list(specs), {}, overrides)
    return SiteSet(bindings, monitor, check_interval=check, move_timeout=move_timeout), overrides


def drive(
    site_set: SiteSet,
    specs: Sequence[TaskSpec],
    workdir: Path,
    during: During | None = None,
    store: Store | None = None,
    config: dict[str, object] | None = None,
) -> tuple[RunRecord, dict[str, TaskRecord], Store]:
    store = store or MemoryStore()
    engine = Engine(store, site_set.bindings[0].executor, sites=site_set, cancel_poll_interval=0.1)
    run = engine.create_run(
        "sites",
        specs,
        workdir=str(workdir),
        run_id=uuid.uuid4().hex[:12],
        config={"home": str(workdir / ".hexflow"), **(config or {})},
    )

    async def main() -> RunRecord:
        driving = asyncio.ensure_future(engine.drive(run.id))
        if during is not None:
            await asyncio.wait_for(during(store, run.id), 60)
        return await asyncio.wait_for(driving, 90)

    return asyncio.run(main()), dict(engine.records), store


def job(task_id: str, workdir: Path, seconds: float = 1.5, **kw: object) -> TaskSpec:
    """A command that notes each start (with its site) and each completion."""
    script = (
        f'echo "$HEXFLOW_SITE $HEXFLOW_ATTEMPT" >> {workdir}/start.{task_id}; '
        f"sleep {seconds} && "
        f'echo "$HEXFLOW_SITE" >> {workdir}/done.{task_id}'
    )
    return shell_spec(task_id, script, **kw)  # type: ignore[arg-type]


def lines(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


async def until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


A = SiteSpec("alpha", "local", priority=10)
B = SiteSpec("beta", "local", priority=0)


def test_work_goes_to_the_higher_priority_site_and_pins_are_kept(tmp_path: Path) -> None:
    site_set, _ = sites(tmp_path, A, B, cpus=4)
    specs = [
        job("free", tmp_path, 0.1),
        job("pinned", tmp_path, 0.1, sites=("beta",)),
        job("either", tmp_path, 0.1, sites=("beta", "alpha")),
    ]
    run, recs, _ = drive(site_set, specs, tmp_path)
    assert run.state.value == "succeeded"
    assert lines(tmp_path / "start.free") == ["alpha 1"]
    assert lines(tmp_path / "start.pinned") == ["beta 1"]
    assert lines(tmp_path / "start.either") == ["alpha 1"]  # priority decides among allowed
    assert {r.site for r in recs.values()} == {"alpha", "beta"}
    assert not any(r.moves for r in recs.values())


def test_a_site_going_down_moves_its_queued_and_running_work(tmp_path: Path) -> None:
    """Four tasks on alpha (2 cpus: 2 run, 2 queue); alpha goes down (an admin override):
    the queued ones move to beta at once, the running ones are stopped and resubmitted
    there; every task completes exactly once."""
    site_set, overrides = sites(tmp_path, A, B, cpus=2)
    specs = [job(f"t{i}", tmp_path, 2.0) for i in range(4)]

    async def take_alpha_down(store: Store, run_id: str) -> None:
        await until(
            lambda: sum(len(lines(tmp_path / f"start.t{i}")) for i in range(4)) == 2,
            "two tasks to start on alpha",
        )
        overrides.set("alpha", SiteState.DOWN, "maintenance")

    run, recs, store = drive(site_set, specs, tmp_path, take_alpha_down)
    assert run.state.value == "succeeded", {k: (r.state, r.error) for k, r in recs.items()}
    ran_on_alpha = [t for t in recs if lines(tmp_path / f"start.{t}")[0].startswith("alpha")]
    assert len(ran_on_alpha) == 2
    for task_id, rec in recs.items():
        assert lines(tmp_path / f"done.{task_id}") == ["beta"], task_id  # once, on beta
        assert rec.site == "beta" and rec.state.value == "succeeded"
        (move,) = rec.moves
        assert move.source == "alpha" and move.to == "beta"
        assert "site alpha is down" in move.reason and "maintenance" in move.reason
        if task_id in ran_on_alpha:  # stopped there and resubmitted: not charged a retry
            assert move.attempt == 1 and rec.attempt == 2 and rec.preemptions == 1
            assert lines(tmp_path / f"start.{task_id}") == ["alpha 1", "beta 2"]
        else:  # never started there
            assert move.attempt is None and rec.attempt == 1
            assert lines(tmp_path / f"start.{task_id}") == ["beta 1"]
    events = store.events_after(0, 10_000)
    moved = [e for e in events if e.kind == TASK_MOVED]
    assert sorted(e.data["task"] for e in moved) == sorted(recs)
    changes = [e for e in events if e.kind == SITE_STATE_CHANGED]
    assert [(e.data["site"], e.data["state"]) for e in changes] == [("alpha", "down")]


def test_a_task_pinned_to_a_down_site_waits_for_it(tmp_path: Path) -> None:
    site_set, overrides = sites(tmp_path, A, B)
    overrides.set("alpha", SiteState.DOWN, "maintenance")
    specs = [job("pinned", tmp_path, 0.1, sites=("alpha",)), job("free", tmp_path, 0.1)]

    async def bring_alpha_back(store: Store, run_id: str) -> None:
        await until(lambda: bool(lines(tmp_path / "done.free")), "the free task")
        await asyncio.sleep(0.5)
        assert not (tmp_path / "start.pinned").exists()  # it waits: alpha is down
        overrides.clear("alpha")

    run, recs, _ = drive(site_set, specs, tmp_path, bring_alpha_back)
    assert run.state.value == "succeeded"
    assert lines(tmp_path / "start.free") == ["beta 1"]
    assert lines(tmp_path / "start.pinned") == ["alpha 1"]


def test_a_planned_outage_drains_the_site_before_it_starts(tmp_path: Path) -> None:
    """alpha's outage starts in 3 s: only work that ends before it goes there; what would
    overrun it runs on beta; nothing runs on alpha during the outage."""
    start = time.time() + 3.0
    alpha = SiteSpec("alpha", "local", priority=10, outages=(Outage(start, start + 3600, "m"),))
    site_set, _ = sites(tmp_path, alpha, B, cpus=4)
    specs = [
        job("short", tmp_path, 0.2, resources=Resources(walltime=1)),
        job("long", tmp_path, 0.2, resources=Resources(walltime=60)),
        job("unknown", tmp_path, 0.2),  # no time limit: alpha's default_walltime (1 h)
    ]
    run, recs, _ = drive(site_set, specs, tmp_path)
    assert run.state.value == "succeeded"
    assert lines(tmp_path / "start.short") == ["alpha 1"]
    assert lines(tmp_path / "start.long") == ["beta 1"]
    assert lines(tmp_path / "start.unknown") == ["beta 1"]
    for rec in recs.values():
        if rec.site == "alpha":
            assert rec.ended_at is not None and rec.ended_at < start


def test_queued_work_moves_off_a_site_before_its_outage(tmp_path: Path) -> None:
    """A queue waiting at alpha for its one cpu is handed to beta when alpha's planned
    outage comes too close for it to finish there."""
    start = time.time() + 4.0
    alpha = SiteSpec("alpha", "local", priority=10, outages=(Outage(start, None, "move"),))
    site_set, _ = sites(tmp_path, alpha, B, cpus=1)
    specs = [job(f"q{i}", tmp_path, 1.0, resources=Resources(walltime=1.5)) for i in range(4)]
    run, recs, _ = drive(site_set, specs, tmp_path)
    assert run.state.value == "succeeded"
    for rec in recs.values():
        assert len(lines(tmp_path / f"done.{rec.id}")) == 1
        if rec.site == "alpha":
            assert rec.ended_at is not None and rec.ended_at <= start
    moved = [r for r in recs.values() if r.moves]
    assert moved and all("drains for its planned outage" in r.moves[0].reason for r in moved)
    assert all(r.moves[0].attempt is None for r in moved)  # they had not started


def test_an_unknown_site_or_a_project_not_allowed_is_refused_when_the_run_is_made(
    tmp_path: Path,
) -> None:
    only_m = SiteSpec("gamma", "local", projects=frozenset({"m1"}))
    site_set, _ = sites(tmp_path, A, only_m)
    with pytest.raises(SpecError, match="names the site 'nowhere'"):
        drive(site_set, [job("x", tmp_path, sites=("nowhere",))], tmp_path)
    site_set, _ = sites(tmp_path, A, only_m)
    with pytest.raises(SpecError, match="project 'm2' may not run at gamma"):
        drive(site_set, [job("y", tmp_path, sites=("gamma",))], tmp_path, config={"project": "m2"})
    site_set, _ = sites(tmp_path, A, B, cpus=2)
    with pytest.raises(SpecError, match="asks for cpus=8"):
        drive(site_set, [job("z", tmp_path, resources=Resources(cpus=8))], tmp_path)
