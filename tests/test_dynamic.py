"""The DAG grows while it runs: tasks that call tasks spawn them; returning a spawned
future makes the parent's result that task's result (a join), across crashes too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hexflow as hx
from hexflow.model import TaskState
from hexflow.settings import Settings
from tests.helpers import run_cli


@hx.task
def train(i: int) -> float:
    return 1.0 / (i + 1)


@hx.task
def best(*scores: float) -> float:
    return max(scores)


@hx.task
def sweep(n: int) -> object:
    return best(*[train(i) for i in range(n)])


@hx.task
def fire_and_forget(n: int) -> str:
    for i in range(n):
        train(i)
    return "spawned"


@hx.task
def broken(x: float) -> float:
    raise ValueError(f"no good: {x}")


@hx.task
def sweep_with_failure() -> object:
    return broken(train(0))


@hx.task
def report(x: object) -> str:
    return f"best={x}"


@hx.task
def returns_foreign(f: object) -> object:
    return f


@hx.task
def too_big() -> object:
    return train.with_options(cpus=1000)(1)


def test_returned_spawned_future_is_joined(settings: Settings) -> None:
    with hx.Workflow("join", workdir=settings.workdir) as wf:
        r = report(sweep(4))
    run = wf.run(settings=settings)
    assert run.ok, run
    assert r.result() == "best=1.0"
    ids = set(run.tasks)
    assert {"sweep-1.train-1", "sweep-1.train-4", "sweep-1.best-1"} <= ids
    parent = run.tasks["sweep-1"]
    assert parent.join == "sweep-1.best-1" and parent.state is TaskState.SUCCEEDED
    # the report started only after the joined task had ended
    assert run.tasks["report-1"].started_at >= run.tasks["sweep-1.best-1"].ended_at


def test_spawned_tasks_run_without_a_join(settings: Settings) -> None:
    with hx.Workflow("spawn", workdir=settings.workdir) as wf:
        f = fire_and_forget(3)
    run = wf.run(settings=settings)
    assert run.ok and f.result() == "spawned"
    assert sorted(t for t in run.tasks if ".train-" in t) == [
        "fire_and_forget-1.train-1",
        "fire_and_forget-1.train-2",
        "fire_and_forget-1.train-3",
    ]
    assert all(t.state is TaskState.SUCCEEDED for t in run.tasks.values())


def test_failure_of_a_joined_task_fails_the_parent_and_its_dependents(
    settings: Settings,
) -> None:
    with hx.Workflow("join-fail", workdir=settings.workdir) as wf:
        r = report(sweep_with_failure())
    run = wf.run(settings=settings)
    assert not run.ok
    parent = run.tasks["sweep_with_failure-1"]
    assert parent.state is TaskState.FAILED and parent.reason == "upstream_failed"
    assert parent.root_cause == "sweep_with_failure-1.broken-1"
    assert "no good" in (parent.error or "")
    assert run.tasks["report-1"].state is TaskState.UPSTREAM_FAILED
    assert run.tasks["report-1"].root_cause == "sweep_with_failure-1.broken-1"
    with pytest.raises(hx.TaskFailed):
        r.result()


def test_futures_passed_into_a_task_arrive_as_values(settings: Settings) -> None:
    with hx.Workflow("foreign", workdir=settings.workdir) as wf:
        bad = returns_foreign(train(1))
    run = wf.run(settings=settings)
    # the argument arrives as a value, not a future: that is fine and returns the value
    assert run.ok and bad.result() == 0.5


def test_a_rejected_spawn_fails_the_parent_with_the_reason(settings: Settings) -> None:
    with hx.Workflow("too-big", workdir=settings.workdir) as wf:
        t = too_big()
    run = wf.run(settings=settings)
    rec = run.tasks[t.task_id]
    assert rec.state is TaskState.FAILED
    assert "spawned were rejected" in (rec.error or "") and "cpus=1000" in (rec.error or "")
    assert not any(".train-" in task_id for task_id in run.tasks)


def test_spawned_workflow_cannot_be_run_on_its_own() -> None:
    from hexflow.executors import taskcontext
    from hexflow.flow.workflow import current_workflow

    taskcontext.enter("parent-1")
    try:
        spawned = current_workflow("x")
        with pytest.raises(hx.HexflowError, match="parent's run"):
            spawned.run()
    finally:
        taskcontext.leave()


SLOW_JOIN = textwrap.dedent(
    """
    import os, time
    import hexflow as hx

    MARKS = {marks!r}

    @hx.task
    def slow(i):
        time.sleep(0.4)
        return i

    @hx.task
    def total(*xs):
        return sum(xs)

    @hx.task
    def parent(n):
        with open(MARKS, "a") as f:
            f.write("parent\\n")
        return total(*[slow(i) for i in range(n)])

    @hx.task
    def double(x):
        return 2 * x

    with hx.Workflow("slow-join") as wf:
        double(parent(6))
    wf.run()
    """
)


@pytest.mark.slow
def test_join_survives_a_crash_of_the_engine(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    script = tmp_path / "flow.py"
    script.write_text(SLOW_JOIN.format(marks=str(marks)))
    env = {**os.environ, "HEXFLOW_HOME": str(tmp_path / ".hexflow"), "HEXFLOW_CPUS": "2"}
    cmd = [sys.executable, "-m", "hexflow.cli.main"]
    proc = subprocess.Popen([*cmd, "run", str(script)], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while not marks.exists():  # the parent ran and spawned; its children are under way
        assert time.monotonic() < deadline, "the parent task never ran"
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    script.unlink()  # resume needs no script: its functions were stored by value
    status = run_cli(tmp_path, env, "status", "--json")
    run_id = json.loads(status.stdout)[0]["run_id"]
    done = run_cli(tmp_path, env, "resume", run_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "succeeded"
    tasks = run_cli(tmp_path, env, "tasks", run_id, "--json")
    rows = {r["task_id"]: r for r in json.loads(tasks.stdout)}
    assert rows["parent-1"]["join"] == "parent-1.total-1"
    assert rows["double-1"]["state"] == "succeeded"
    store_settings = Settings.from_env(env={"HEXFLOW_HOME": str(tmp_path / ".hexflow")})
    from hexflow.store import open_store

    store = open_store(store_settings.db_url)
    try:
        import pickle

        assert pickle.loads(store.get_task(run_id, "double-1").result) == 2 * sum(range(6))
    finally:
        store.close()
    # the parent's code ran once: its spawn was recorded, so resume waited for the join
    assert marks.read_text().count("parent") == 1


FLAKY_CHILD = textwrap.dedent(
    """
    import os
    import hexflow as hx

    MARKER = {marker!r}

    @hx.task
    def child():
        if not os.path.exists(MARKER):
            raise RuntimeError("the child fails until the marker exists")
        return 7

    @hx.task
    def parent():
        return child()

    with hx.Workflow("flaky-child") as wf:
        parent()
    wf.run()
    """
)


def test_retry_failed_reruns_a_parent_and_adopts_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = tmp_path / "flow.py"
    script.write_text(FLAKY_CHILD.format(marker=str(marker)))
    env = {**os.environ, "HEXFLOW_HOME": str(tmp_path / ".hexflow")}

    def hexflow(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(tmp_path, env, *args)

    first = hexflow("run", str(script), "--json")
    assert first.returncode == 1 and json.loads(first.stdout)["state"] == "failed"
    run_id = json.loads(first.stdout)["run_id"]
    marker.touch()
    again = hexflow("resume", run_id, "--retry-failed", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tasks"] == {"succeeded": 2}
    rows = {r["task_id"]: r for r in json.loads(hexflow("tasks", run_id, "--json").stdout)}
    assert rows["parent-1"]["join"] == "parent-1.child-1"
