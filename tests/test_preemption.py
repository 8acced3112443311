"""The facility policy in the live engine: preemption, admission, deadlines, backfilling.

End to end with real worker processes on the local executor. Task functions are defined
inside the tests so that they are serialized by value.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import hexflow as hx
from hexflow.flow.runtime import make_store
from hexflow.model import TaskRecord, TaskState
from hexflow.settings import Settings

pytestmark = pytest.mark.timeout(120)


def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "HEXFLOW_HOME": str(tmp_path / ".hexflow"),
        "HEXFLOW_KILL_GRACE": "0.5",
        "HEXFLOW_CPUS": "2",
        "HEXFLOW_PREEMPT_GRACE": "3",
    }
    return Settings.from_env(env={**base, **env}, cwd=tmp_path)


def records(settings: Settings, run_id: str) -> dict[str, TaskRecord]:
    return {r.name: r for r in make_store(settings).load_tasks(run_id)}


def test_a_realtime_task_preempts_checkpointing_work_and_starts_within_a_second(
    tmp_path: Path,
) -> None:
    @hx.task(cpus=0.95, qos="preempt", checkpoint=True, walltime="10m")
    def crunch(name: str, steps: int) -> dict[str, Any]:
        ckpt = hx.checkpoint_dir() / "step"
        start = int(ckpt.read_text()) if ckpt.exists() else 0
        for step in range(start, steps):
            if hx.preemption_requested():
                ckpt.write_text(str(step))
                raise hx.Preempted(f"{name} stopped at step {step}")
            time.sleep(0.02)
        return {"name": name, "resumed_from": start}

    @hx.task(cpus=0.1, qos="realtime", walltime="1m")
    def instrument() -> float:
        time.sleep(1.0)  # the preempt tasks are running by now
        return time.time()

    @hx.task(cpus=1.5, qos="realtime", walltime="1m")
    def analyse(arrived: float) -> float:
        return time.time() - arrived

    with hx.Workflow("preempt") as wf:
        a = crunch("a", 200)
        b = crunch("b", 200)
        latency = analyse(instrument())
    run = wf.run(settings=make_settings(tmp_path))
    assert run.ok, run.counts()
    recs = records(make_settings(tmp_path), run.id)
    started = recs["analyse-1"].started_at
    arrived = recs["instrument-1"].ended_at
    assert started is not None and arrived is not None
    # the realtime task waited only for the victims to save and stop
    assert started - arrived < 1.0, started - arrived
    assert latency.result() < 1.5
    for name, fut in (("a", a), ("b", b)):
        out = fut.result()
        assert out["name"] == name and out["resumed_from"] > 0  # went on from its checkpoint
    preempted = [r for r in recs.values() if r.preemptions]
    assert {r.name for r in preempted} == {"crunch-1", "crunch-2"}
    for rec in preempted:
        assert rec.preemptions == 1 and rec.state is TaskState.SUCCEEDED
        assert rec.attempt == 2  # the preemption is counted, not charged as a retry


def test_a_shell_task_gets_sigterm_to_checkpoint_and_a_task_that_ignores_it_is_stopped(
    tmp_path: Path,
) -> None:
    script = (
        'f="$HEXFLOW_CHECKPOINT_DIR/n"; n=$(cat "$f" 2>/dev/null || echo 0); '
        "trap 'echo $n > \"$f\"; exit 143' TERM; "
        'while [ "$n" -lt 60 ]; do n=$((n+1)); sleep 0.05; done; '
        'echo "from $(cat "$f" 2>/dev/null || echo 0)"'
    )

    @hx.shell(cpus=1, qos="preempt", checkpoint=True, walltime="10m", use_shell=True)
    def polite() -> str:
        return script

    @hx.task(cpus=1, qos="preempt", walltime="10m")
    def stubborn() -> str:
        end = time.time() + 3.0
        while time.time() < end:  # never looks at the notice: stopped after the grace
            time.sleep(0.05)
        return "done"

    @hx.task(cpus=0.5, qos="realtime", walltime="1m")
    def trigger() -> None:
        time.sleep(0.8)

    @hx.task(cpus=2.5, qos="urgent", walltime="1m")
    def urgent_work(_: None) -> str:
        return "ok"

    with hx.Workflow("preempt-shell") as wf:
        p = polite()
        s = stubborn()
        u = urgent_work(trigger())
    settings = make_settings(tmp_path, HEXFLOW_CPUS="2.5", HEXFLOW_PREEMPT_GRACE="0.5")
    run = wf.run(settings=settings)
    assert run.ok, [(r.name, r.reason, r.error) for r in records(settings, run.id).values()]
    assert u.result() == "ok" and s.result() == "done" and p.result() == 0
    recs = records(settings, run.id)
    assert recs["polite-1"].preemptions == 1 and recs["stubborn-1"].preemptions == 1
    logs = settings.home / "runs" / run.id / "logs"
    out = [f.read_text() for f in logs.glob(f"{recs['polite-1'].id}*out*")]
    assert any(line.startswith("from ") and line != "from 0\n" for line in out), out


def test_an_impossible_deadline_is_rejected_at_once_with_the_reason(tmp_path: Path) -> None:
    @hx.task(cpus=1, qos="urgent", walltime="10m", deadline="1m")
    def too_slow() -> int:
        return 1

    @hx.task(cpus=1)
    def after(x: int) -> int:
        return x

    with hx.Workflow("deadline") as wf:
        late = after(too_slow())
    run = wf.run(settings=make_settings(tmp_path))
    assert not run.ok
    recs = records(make_settings(tmp_path), run.id)
    rejected = recs["too_slow-1"]
    assert rejected.state is TaskState.FAILED and rejected.reason == "rejected"
    assert rejected.attempt == 0  # never started
    assert "cannot be met" in (rejected.error or "") and "best_effort" in (rejected.error or "")
    assert recs["after-1"].state is TaskState.UPSTREAM_FAILED
    with pytest.raises(hx.TaskFailed):
        late.result()


def test_preemption_can_be_switched_off(tmp_path: Path) -> None:
    @hx.task(cpus=2, qos="preempt", walltime="1m")
    def hog() -> float:
        time.sleep(1.0)
        return time.time()

    @hx.task(cpus=0.5, qos="realtime", walltime="1m")
    def trigger() -> None:
        time.sleep(0.3)

    @hx.task(cpus=2, qos="realtime", walltime="1m")
    def rt(_: None) -> float:
        return time.time()

    with hx.Workflow("no-preempt") as wf:
        h = hog()
        r = rt(trigger())
    settings = make_settings(tmp_path, HEXFLOW_CPUS="2.5", HEXFLOW_POLICY_OFF="preemption")
    run = wf.run(settings=settings)
    assert run.ok
    assert r.result() >= h.result()  # waited for the hog to end
    assert all(rec.preemptions == 0 for rec in records(settings, run.id).values())


def test_unknown_policy_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(hx.SpecError, match="unknown policy fairshare") as err:
        Settings.from_env(env={"HEXFLOW_POLICY_OFF": "fairshare,edf"})
    assert "fair_share" in (err.value.hint or "")


def test_a_gang_starts_together_only_when_all_its_members_are_ready(tmp_path: Path) -> None:
    @hx.task(cpus=1, walltime="1m")
    def prepare() -> None:
        time.sleep(0.8)

    @hx.task(cpus=1, walltime="1m", gang="sim-1")
    def simulation(_: None = None) -> float:
        return time.time()

    @hx.task(cpus=1, walltime="1m", gang="sim-1")
    def in_situ(_: None = None) -> float:
        return time.time()

    with hx.Workflow("gang") as wf:
        sim = simulation()  # ready at once, but its partner waits for prepare
        ana = in_situ(prepare())
    settings = make_settings(tmp_path, HEXFLOW_CPUS="2")
    run = wf.run(settings=settings)
    assert run.ok
    recs = records(settings, run.id)
    prep_end = recs["prepare-1"].ended_at
    starts = [recs["simulation-1"].started_at, recs["in_situ-1"].started_at]
    assert prep_end is not None and None not in starts
    assert min(starts) >= prep_end  # the ready member did not start alone
    assert abs(sim.result() - ana.result()) < 1.0


def test_an_exclusive_task_holds_the_machine_alone(tmp_path: Path) -> None:
    @hx.task(cpus=0.5, walltime="1m")
    def small(i: int) -> tuple[float, float]:
        start = time.time()
        time.sleep(0.3)
        return start, time.time()

    @hx.task(cpus=0.5, walltime="1m", exclusive=True)
    def whole() -> tuple[float, float]:
        start = time.time()
        time.sleep(0.5)
        return start, time.time()

    with hx.Workflow("exclusive") as wf:
        w = whole()
        smalls = [small(i) for i in range(4)]
    run = wf.run(settings=make_settings(tmp_path, HEXFLOW_CPUS="2"))
    assert run.ok
    ws, we = w.result()
    for fut in smalls:
        s, e = fut.result()
        assert e <= ws or s >= we  # never at the same time as the exclusive task


def test_gang_and_exclusive_in_yaml_and_bad_values(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: g\ntasks:\n"
        '  a: {command: ["true"], gang: pair}\n'
        '  b: {command: ["true"], gang: pair, exclusive: false}\n'
    )
    wf = hx.load_workflow(flow)
    assert {s.gang for s in wf.specs.values()} == {"pair"}
    flow.write_text('name: g\ntasks:\n  a: {command: ["true"], exclusive: maybe}\n')
    with pytest.raises(hx.WorkflowFileError, match="exclusive"):
        hx.load_workflow(flow)
    with pytest.raises(hx.SpecError, match="gang"):

        @hx.task(gang="  ")
        def bad() -> None: ...

        with hx.Workflow("w"):
            bad()
