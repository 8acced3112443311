"""Engine and local-executor behaviour, end to end with real processes (no mocks).

Task functions are defined inside the tests so that they are serialized by value and the
workers never import this module.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

import hexflow as hx
from hexflow.engine import Engine
from hexflow.errors import SpecError
from hexflow.executors.local import LocalExecutor
from hexflow.flow.runtime import make_store
from hexflow.flow.serialize import dumps_call, dumps_function
from hexflow.model import RunState, TaskKind, TaskSpec, TaskState
from hexflow.model.refs import TaskRef
from hexflow.settings import Settings
from hexflow.store import MemoryStore
from tests.helpers import live, run_cli, wait_for

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------- helpers
def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "HEXFLOW_HOME": str(tmp_path / ".hexflow"),
        "HEXFLOW_KILL_GRACE": "0.5",
        "HEXFLOW_CPUS": "4",
    }
    return Settings.from_env(env={**base, **env}, cwd=tmp_path)


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEXFLOW_")}
    env.update(HEXFLOW_HOME=str(tmp_path / ".hexflow"), HEXFLOW_KILL_GRACE="0.5")
    return env


def hexflow_cli(
    tmp_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path, cli_env(tmp_path), *args, timeout=timeout)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ---------------------------------------------------------------- dependencies
def test_data_dependencies_pass_results(tmp_path: Path) -> None:
    @hx.task
    def source(n: int) -> list[int]:
        return list(range(n))

    @hx.task
    def total(values: list[int], scale: int = 1) -> int:
        return sum(values) * scale

    @hx.task
    def combine(parts: dict[str, Any]) -> str:
        return f"{parts['a']}+{parts['b'][0]}"

    with hx.Workflow("deps", workdir=tmp_path) as wf:
        s = source(5)
        t = total(s, scale=2)
        c = combine({"a": t, "b": [s, 0]})
    run = wf.run(settings=make_settings(tmp_path))

    assert run.ok, run
    assert s.result() == [0, 1, 2, 3, 4]
    assert t.result() == 20
    assert c.result() == "20+[0, 1, 2, 3, 4]"
    assert wf.tasks[c.task_id].deps == (t.task_id, s.task_id)


def test_after_orders_tasks_without_data(tmp_path: Path) -> None:
    order = tmp_path / "order.txt"

    @hx.task
    def mark(label: str, pause: float = 0.0) -> None:
        time.sleep(pause)
        with open(order, "a") as f:
            f.write(label + "\n")

    with hx.Workflow("after", workdir=tmp_path) as wf:
        first = mark("first", 0.5)
        second = mark.with_options(after=[first])("second")
        mark.with_options(after=[second])("third")
    run = wf.run(settings=make_settings(tmp_path))

    assert run.ok, run
    # four cpus are free, so only the ordering constraint keeps "first" ahead
    assert read_lines(order) == ["first", "second", "third"]


# ---------------------------------------------------------------- failures
def test_failure_propagates_to_dependents(tmp_path: Path) -> None:
    @hx.task
    def explode() -> int:
        raise KeyError("no such sample")

    @hx.task
    def use(x: int) -> int:
        return x + 1

    @hx.shell
    def exit_three() -> list[str]:
        return ["sh", "-c", "echo about to fail >&2; exit 3"]

    @hx.task
    def fine() -> str:
        return "fine"

    with hx.Workflow("fail", workdir=tmp_path) as wf:
        root = explode()
        child = use(root)
        grandchild = use(child)
        ordered = fine.with_options(after=[root])()
        bad_shell = exit_three()
        independent = fine()
    run = wf.run(settings=make_settings(tmp_path))

    assert run.state == "failed"
    assert run.tasks[root.task_id].state is TaskState.FAILED
    assert run.tasks[root.task_id].reason == "error"
    for fut in (child, grandchild, ordered):
        rec = run.tasks[fut.task_id]
        assert rec.state is TaskState.UPSTREAM_FAILED, rec
        assert rec.root_cause == root.task_id
        assert root.task_id in (rec.error or "")
        assert rec.attempt == 0  # never ran
    assert independent.result() == "fine"

    # a Python error comes back as the task's own exception type
    with pytest.raises(KeyError, match="no such sample"):
        root.result()
    # everything else is TaskFailed with a reason
    with pytest.raises(hx.TaskFailed) as info:
        grandchild.result()
    assert info.value.fields["reason"] == "upstream_failed"
    assert info.value.fields["root_cause"] == root.task_id
    with pytest.raises(hx.TaskFailed) as info:
        bad_shell.result()
    assert info.value.fields["reason"] == "exit_code"
    assert info.value.fields["exit_code"] == 3
    assert "about to fail" in (info.value.fields["traceback"] or "")


def test_retry_with_backoff(tmp_path: Path) -> None:
    marker = tmp_path / "flaky.marker"
    attempts = tmp_path / "attempts.txt"

    @hx.task(retries=2, backoff=0.5)
    def flaky() -> str:
        with open(attempts, "a") as f:
            f.write(f"{os.environ['HEXFLOW_ATTEMPT']} {time.time()}\n")
        if not marker.exists():
            marker.touch()
            raise RuntimeError("transient failure")
        return "recovered"

    @hx.task(retries=1, backoff=0)
    def always_fails() -> None:
        raise ValueError("permanent")

    with hx.Workflow("retry", workdir=tmp_path) as wf:
        f = flaky()
        g = always_fails()
    run = wf.run(settings=make_settings(tmp_path))

    assert f.result() == "recovered"
    rec = run.tasks[f.task_id]
    assert rec.attempt == 2
    assert rec.state is TaskState.SUCCEEDED
    assert rec.reason is None and rec.error is None
    lines = [line.split() for line in read_lines(attempts)]
    assert [n for n, _ in lines] == ["1", "2"]
    # the second attempt waited for the backoff (a lower bound the engine guarantees)
    assert float(lines[1][1]) - float(lines[0][1]) >= 0.4

    g_rec = run.tasks[g.task_id]
    assert g_rec.state is TaskState.FAILED
    assert g_rec.attempt == 2  # the first try and one retry
    with pytest.raises(ValueError, match="permanent"):
        g.result()


# ---------------------------------------------------------------- time limits
@pytest.mark.parametrize("limit", ["timeout", "walltime"])
def test_time_limit_kills_the_whole_process_group(tmp_path: Path, limit: str) -> None:
    pidfile = tmp_path / "pids"
    script = f"echo $$ > {pidfile}; sleep 30 & echo $! >> {pidfile}; sleep 30"

    @hx.shell(**{limit: 1})
    def stuck() -> list[str]:
        return ["sh", "-c", script]

    with hx.Workflow("limits", workdir=tmp_path) as wf:
        fut = stuck()
    run = wf.run(settings=make_settings(tmp_path))

    rec = run.tasks[fut.task_id]
    assert rec.state is TaskState.FAILED
    assert rec.reason == limit
    with pytest.raises(hx.TaskFailed) as info:
        fut.result()
    assert info.value.fields["reason"] == limit
    leader, background = (int(x) for x in read_lines(pidfile))
    wait_for(lambda: not group_members(leader), 10, f"process group {leader} to be gone")
    assert not live(background), "the backgrounded sleep survived the time limit"


def test_python_timeout_replaces_worker(tmp_path: Path) -> None:
    info_file = tmp_path / "sleeper.json"

    # urgent QoS: with one cpu the sleeper is placed before the quick tasks
    @hx.task(timeout=1, qos="urgent")
    def sleeper() -> None:
        child = subprocess.Popen(["sleep", "30"])
        info_file.write_text(json.dumps({"worker": os.getpid(), "child": child.pid}))
        time.sleep(30)

    @hx.task
    def quick(i: int) -> tuple[int, int]:
        return i, os.getpid()

    with hx.Workflow("pytimeout", workdir=tmp_path) as wf:
        s = sleeper()
        quicks = [quick(i) for i in range(3)]
    run = wf.run(settings=make_settings(tmp_path, HEXFLOW_CPUS="1"))

    rec = run.tasks[s.task_id]
    assert rec.state is TaskState.FAILED
    assert rec.reason == "timeout"
    info = json.loads(info_file.read_text())
    assert not live(info["worker"]), "the timed-out worker still runs"
    wait_for(lambda: not live(info["child"]), 10, "the task's child process to die")
    for i, q in enumerate(quicks):
        value, pid = q.result()
        assert value == i
        assert pid != info["worker"]  # they ran on the replacement worker


def test_worker_crash_is_worker_lost_and_retried(tmp_path: Path) -> None:
    @hx.task(retries=1, backoff=0)
    def crash_once() -> str:
        print("attempt", os.environ["HEXFLOW_ATTEMPT"], "says hello", flush=True)
        if os.environ["HEXFLOW_ATTEMPT"] == "1":
            os._exit(3)
        return "second try"

    @hx.task
    def kill_self() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @hx.task
    def later(x: str) -> str:
        return x.upper()

    with hx.Workflow("crash", workdir=tmp_path) as wf:
        c = crash_once()
        k = kill_self()
        after_crash = later(c)
    run = wf.run(settings=make_settings(tmp_path, HEXFLOW_CPUS="2"))

    c_rec = run.tasks[c.task_id]
    assert c_rec.state is TaskState.SUCCEEDED
    assert c_rec.attempt == 2
    assert after_crash.result() == "SECOND TRY"
    # what the crashed attempt printed before it died is kept in its own log
    logs = Path(make_settings(tmp_path).home) / "runs" / run.id / "logs"
    assert (logs / f"{c.task_id}.1.out").read_text() == "attempt 1 says hello\n"
    assert (logs / f"{c.task_id}.2.out").read_text() == "attempt 2 says hello\n"
    k_rec = run.tasks[k.task_id]
    assert k_rec.state is TaskState.FAILED
    assert k_rec.reason == "worker_lost"
    assert k_rec.attempt == 1
    with pytest.raises(hx.TaskFailed) as info:
        k.result()
    assert info.value.fields["reason"] == "worker_lost"


def test_checkpoint_restart_resumes_from_saved_step(tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"

    @hx.task(checkpoint=True, retries=1, backoff=0)
    def train(steps: int) -> dict[str, Any]:
        state = hx.checkpoint_dir() / "step"
        start = int(state.read_text()) if state.exists() else 0
        attempt = os.environ["HEXFLOW_ATTEMPT"]
        with open(starts, "a") as f:
            f.write(f"{attempt} {start}\n")
        for step in range(start, steps):
            tmp = state.with_suffix(".tmp")
            tmp.write_text(str(step + 1))
            os.replace(tmp, state)
            if step + 1 == 5 and attempt == "1":
                os._exit(1)  # die hard halfway through
        return {"start": start, "attempt": attempt, "ckpt": str(hx.checkpoint_dir())}

    with hx.Workflow("ckpt", workdir=tmp_path) as wf:
        t = train(10)
    settings = make_settings(tmp_path)
    run = wf.run(settings=settings)

    out = t.result()
    assert out["attempt"] == "2"
    assert out["start"] == 5, "attempt 2 did not resume from the checkpoint"
    assert read_lines(starts) == ["1 0", "2 5"]
    assert run.tasks[t.task_id].attempt == 2
    assert Path(out["ckpt"]).is_relative_to(settings.home / "runs" / run.id)
    assert (Path(out["ckpt"]) / "step").read_text() == "10"


def test_checkpoint_dir_requires_checkpoint_option(tmp_path: Path) -> None:
    @hx.task
    def no_ckpt() -> str:
        return str(hx.checkpoint_dir())

    with hx.Workflow("nockpt", workdir=tmp_path) as wf:
        f = no_ckpt()
    wf.run(settings=make_settings(tmp_path))
    with pytest.raises(hx.HexflowError, match="no checkpoint directory"):
        f.result()


# ---------------------------------------------------------------- cache
def test_cache_skips_identical_work(tmp_path: Path) -> None:
    counter = tmp_path / "executions.txt"

    @hx.task(cache=True)
    def expensive(x: int) -> int:
        with open(counter, "a") as f:
            f.write(f"{x}\n")
        return x * 10

    @hx.task
    def plus_one(x: int) -> int:
        return x + 1

    settings = make_settings(tmp_path)

    def run_once(x: int) -> tuple[hx.Run, hx.TaskFuture, hx.TaskFuture]:
        with hx.Workflow("cache", workdir=tmp_path) as wf:
            e = expensive(x)
            p = plus_one(e)
        return wf.run(settings=settings), e, p

    run1, e1, p1 = run_once(1)
    assert e1.result() == 10 and p1.result() == 11
    assert not run1.tasks[e1.task_id].cached
    assert read_lines(counter) == ["1"]

    run2, e2, p2 = run_once(1)
    assert run2.ok
    assert read_lines(counter) == ["1"], "the cached task ran again"
    assert run2.tasks[e2.task_id].cached
    assert e2.result() == 10 and p2.result() == 11  # dependents get the cached value

    run3, e3, _ = run_once(2)
    assert e3.result() == 20
    assert not run3.tasks[e3.task_id].cached
    assert read_lines(counter) == ["1", "2"]

    tasks = json.loads(hexflow_cli(tmp_path, "tasks", run2.id, "--json").stdout)
    assert {t["task_id"]: t["cached"] for t in tasks} == {e2.task_id: True, p2.task_id: False}


# ---------------------------------------------------------------- resources
def test_gpu_ids_are_bound_per_task(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()

    def visible(label: str, peer: str | None) -> tuple[str, bool]:
        value = os.environ["CUDA_VISIBLE_DEVICES"]
        (seen / label).write_text(value)
        if peer is None:
            return value, True
        # hold the GPU until the peer holds one too (bounded)
        deadline = time.monotonic() + 20
        while not (seen / peer).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return value, (seen / peer).exists()

    gpu_task = hx.task(gpus=1)(visible)
    cpu_task = hx.task(visible)

    with hx.Workflow("gpus", workdir=tmp_path) as wf:
        a = gpu_task("a", "b")
        b = gpu_task("b", "a")
        c = cpu_task("c", None)
    run = wf.run(settings=make_settings(tmp_path, HEXFLOW_GPUS="2"))

    assert run.ok, run
    (gpu_a, overlapped_a), (gpu_b, overlapped_b) = a.result(), b.result()
    assert overlapped_a and overlapped_b  # both GPUs were held at the same time
    assert sorted([gpu_a, gpu_b]) == ["0", "1"]
    assert c.result() == ("", True)


def test_task_larger_than_machine_is_rejected(tmp_path: Path) -> None:
    @hx.task(cpus=64)
    def huge() -> None:
        return None

    with hx.Workflow("huge", workdir=tmp_path) as wf:
        huge()
    settings = make_settings(tmp_path, HEXFLOW_CPUS="2")
    with pytest.raises(SpecError) as info:
        wf.run(settings=settings)
    assert "huge-1" in str(info.value)
    assert info.value.fields["task"] == "huge-1"
    store = make_store(settings)
    try:
        assert store.list_runs() == []  # nothing was persisted
    finally:
        store.close()


def shell_spec(task_id: str, *deps: str, argv: tuple[str, ...] = ("true",), **kw: Any) -> TaskSpec:
    return TaskSpec(id=task_id, name=task_id, kind=TaskKind.SHELL, command=argv, deps=deps, **kw)


def test_cyclic_or_unknown_dependencies_are_rejected(tmp_path: Path) -> None:
    store = MemoryStore()
    engine = Engine(store, LocalExecutor(cpus=2, scratch_dir=str(tmp_path / "scratch")))
    kw: dict[str, Any] = dict(workdir=str(tmp_path), config={})

    with pytest.raises(SpecError, match="cycle") as info:
        engine.create_run(
            "cyclic",
            [shell_spec("a", "c"), shell_spec("b", "a"), shell_spec("c", "b")],
            run_id="r1",
            **kw,
        )
    assert set(info.value.fields["cycle"]) == {"a", "b", "c"}
    with pytest.raises(SpecError, match="unknown task 'ghost'"):
        engine.create_run("unknown", [shell_spec("a", "ghost")], run_id="r2", **kw)
    assert store.list_runs() == []

    with hx.Workflow("unknown", workdir=tmp_path) as wf, pytest.raises(SpecError, match="ghost"):
        wf.add_spec(shell_spec("a", "ghost"))


# ---------------------------------------------------------------- logs
def test_logs_per_attempt_for_python_and_shell_tasks(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"

    @hx.task(retries=1, backoff=0)
    def chatty() -> None:
        attempt = os.environ["HEXFLOW_ATTEMPT"]
        print(f"py-out attempt {attempt}")
        print(f"py-err attempt {attempt}", file=sys.stderr)
        os.system(f"echo child-out attempt {attempt}")  # noqa: S605 - fd-level capture
        if not marker.exists():
            marker.touch()
            raise RuntimeError("first attempt fails")

    @hx.shell
    def shell_chatty() -> list[str]:
        return ["sh", "-c", "echo sh-out; echo sh-err >&2"]

    with hx.Workflow("logs", workdir=tmp_path) as wf:
        p = chatty()
        s = shell_chatty()
    run = wf.run(settings=make_settings(tmp_path))
    assert run.ok, run
    assert run.tasks[p.task_id].attempt == 2

    def logs(task: str, *extra: str) -> dict[str, Any]:
        proc = hexflow_cli(tmp_path, "logs", run.id, task, "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    latest = logs(p.task_id)
    assert latest["attempt"] == 2
    assert latest["stdout"].splitlines() == ["py-out attempt 2", "child-out attempt 2"]
    assert latest["stderr"].strip() == "py-err attempt 2"
    first = logs(p.task_id, "--attempt", "1")
    assert "py-out attempt 1" in first["stdout"] and "attempt 2" not in first["stdout"]
    assert "py-err attempt 1" in first["stderr"]
    assert "RuntimeError: first attempt fails" in first["stderr"]  # the traceback

    sh = logs(s.task_id)
    assert sh["stdout"] == "sh-out\n"
    assert sh["stderr"] == "sh-err\n"
    plain = hexflow_cli(tmp_path, "logs", run.id, s.task_id)
    assert plain.returncode == 0
    assert plain.stdout == "sh-out\n"
    assert "sh-err" in plain.stderr

    log_dir = tmp_path / ".hexflow" / "runs" / run.id / "logs"
    assert (log_dir / f"{p.task_id}.1.out").exists()
    assert (log_dir / f"{p.task_id}.2.out").exists()


# ---------------------------------------------------------------- cancel
CANCEL_SCRIPT = """
import time
import hexflow as hx

@hx.shell
def long_shell():
    return ["sh", "-c", "echo $$ > {pidfile}; exec sleep 60"]

@hx.task
def long_python():
    time.sleep(60)
    return 1

@hx.task
def downstream(x):
    return x

with hx.Workflow("cancel-me") as wf:
    long_shell()
    downstream(long_python())
wf.run()
"""


def wait_for_run(tmp_path: Path, settings: Settings, running: int) -> str:
    """Poll the store until a run exists with ``running`` tasks running; return its id."""
    store = make_store(settings)
    try:

        def check() -> str | None:
            runs = store.list_runs()
            if not runs:
                return None
            states = [t.state for t in store.load_tasks(runs[0].id)]
            return runs[0].id if states.count(TaskState.RUNNING) >= running else None

        return str(wait_for(check, 30, f"{running} running tasks"))
    finally:
        store.close()


def test_cancel_from_another_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "shell.pid"
    script = tmp_path / "flow.py"
    script.write_text(CANCEL_SCRIPT.replace("{pidfile}", str(pidfile)))
    settings = make_settings(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hexflow.cli.main", "run", str(script), "--json"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = wait_for_run(tmp_path, settings, running=2)
        shell_pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10))
        cancelled = hexflow_cli(tmp_path, "cancel", run_id, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout)["mode"] == "requested"
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 1  # the run did not succeed
    assert json.loads(stdout)["state"] == "cancelled"
    status = json.loads(hexflow_cli(tmp_path, "status", run_id, "--json").stdout)
    assert status["state"] == "cancelled"
    assert status["owner"] is None
    tasks = {
        t["name"]: t for t in json.loads(hexflow_cli(tmp_path, "tasks", run_id, "--json").stdout)
    }
    assert tasks["long_shell-1"]["state"] == "cancelled"
    assert tasks["long_python-1"]["state"] == "cancelled"
    assert tasks["downstream-1"]["state"] in ("cancelled", "upstream_failed")
    wait_for(lambda: not live(shell_pid), 10, "the cancelled shell task to die")


# ---------------------------------------------------------------- growing DAG
def python_spec(
    task_id: str, fn: Callable[..., Any], *args: Any, deps: tuple[str, ...] = ()
) -> TaskSpec:
    payload = dumps_call(dumps_function(fn, task_id), args, {}, task_id)
    inputs = tuple(a.task_id for a in args if isinstance(a, TaskRef))
    return TaskSpec(
        id=task_id,
        name=task_id,
        kind=TaskKind.PYTHON,
        payload=payload,
        deps=deps or inputs,
        inputs=inputs,
    )


def test_dag_grows_during_a_run(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    store = MemoryStore()
    executor = LocalExecutor(cpus=2, scratch_dir=str(tmp_path / "scratch"), kill_grace=0.5)
    engine = Engine(store, executor, cancel_poll_interval=0.05)
    # "first" holds the run open until the test opens the gate (bounded: 15 s)
    wait_gate = f"i=0; while [ ! -e {gate} ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done"
    first = shell_spec("first", argv=("sh", "-c", f"{wait_gate}; test -e {gate}"))
    engine.create_run(
        "grow",
        [first],
        workdir=str(tmp_path),
        run_id="grow1",
        config={"home": str(tmp_path / ".hexflow")},
    )

    def make() -> int:
        return 21

    def double(x: int) -> int:
        return 2 * x

    async def drive_and_grow() -> Any:
        driving = asyncio.ensure_future(engine.drive("grow1"))
        deadline = time.monotonic() + 20
        while not (
            engine.records.get("first") and engine.records["first"].state is TaskState.RUNNING
        ):
            assert time.monotonic() < deadline, "first never started"
            assert not driving.done(), driving
            await asyncio.sleep(0.02)
        # a rejected batch leaves the DAG as it was
        with pytest.raises(SpecError, match="unknown task"):
            engine.add_tasks([shell_spec("orphan", "nowhere")])
        with pytest.raises(SpecError, match="asks for"):
            engine.add_tasks([shell_spec("big", resources=hx.Resources(cpus=64))])
        engine.add_tasks(
            [
                python_spec("make", make, deps=("first",)),
                python_spec("double", double, TaskRef("make")),
                shell_spec("big", "first"),  # the same id again, now one that fits
            ]
        )
        gate.touch()
        return await asyncio.wait_for(driving, 30)

    final = asyncio.run(drive_and_grow())

    assert final.state is RunState.SUCCEEDED
    stored = {t.id: t for t in store.load_tasks("grow1")}
    assert set(stored) == {"first", "make", "double", "big"}
    assert all(t.state is TaskState.SUCCEEDED for t in stored.values()), stored
    assert pickle.loads(stored["double"].result or b"") == 42
    assert store.get_run("grow1").state is RunState.SUCCEEDED


# ---------------------------------------------------------------- a run from create to drive
def test_a_cancel_between_create_and_drive_is_not_lost(tmp_path: Path) -> None:
    """create_run claims the run for this process, so a `hexflow cancel` that comes before
    the engine drives it is a request the engine applies, not a change behind its back."""
    from hexflow.engine.lease import owner_alive

    store = MemoryStore()
    engine = Engine(
        store,
        LocalExecutor(cpus=2, scratch_dir=str(tmp_path / "scratch")),
        cancel_poll_interval=0.05,
    )
    specs = [shell_spec("a", argv=("sleep", "30")), shell_spec("b", "a")]
    engine.create_run(
        "claimed", specs, workdir=str(tmp_path), run_id="c1", config={"home": str(tmp_path)}
    )
    stored = store.get_run("c1")
    assert owner_alive(stored.owner) and stored.state is RunState.PENDING
    assert [t.state for t in store.load_tasks("c1")] == [TaskState.READY, TaskState.PENDING]
    store.request_cancel("c1")  # what `hexflow cancel` does while the owner lives

    final = engine.run("c1")

    assert final.state is RunState.CANCELLED
    assert store.get_run("c1").owner is None
    tasks = {t.id: t.state for t in store.load_tasks("c1")}
    assert tasks["a"] is TaskState.CANCELLED
    assert tasks["b"] in (TaskState.CANCELLED, TaskState.UPSTREAM_FAILED)


def test_a_created_run_that_cannot_start_is_left_unowned(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = MemoryStore()
    engine = Engine(store, LocalExecutor(cpus=2, scratch_dir=str(tmp_path / "scratch")))
    engine.create_run(
        "stuck",
        [shell_spec("a")],
        workdir=str(tmp_path),
        run_id="s1",
        config={"home": str(blocker)},  # its logs directory cannot be created
    )
    with pytest.raises(OSError):
        engine.run("s1")
    stored = store.get_run("s1")
    assert stored.owner is None and stored.state is RunState.PENDING  # as created, free
    assert [t.state for t in store.load_tasks("s1")] == [TaskState.READY]


def test_a_launch_that_raises_fails_that_task_only(tmp_path: Path) -> None:
    class Flaky(LocalExecutor):
        def submit(self, launch):  # type: ignore[no-untyped-def]
            if launch.spec.id == "bad":
                raise RuntimeError("no slot for you")
            super().submit(launch)

    store = MemoryStore()
    engine = Engine(store, Flaky(cpus=2, scratch_dir=str(tmp_path / "scratch")))
    specs = [shell_spec("bad", argv=("true",)), shell_spec("good", argv=("true",))]
    engine.create_run(
        "flaky", specs, workdir=str(tmp_path), run_id="f1",
        config={"home": str(tmp_path / ".hexflow")},
    )  # fmt: skip
    run = engine.run("f1")
    assert run.state is RunState.FAILED  # it ends instead of hanging
    bad, good = store.get_task("f1", "bad"), store.get_task("f1", "good")
    assert bad.state is TaskState.FAILED and bad.reason == "launch_failed"
    assert "no slot for you" in (bad.error or "")
    assert good.state is TaskState.SUCCEEDED


def test_worker_boot_lines_agree() -> None:
    from hexflow.executors.local import pool, worker

    assert pool._BOOT == worker.BOOT  # noqa: SLF001


def test_tasks_see_the_users_pythonpath_not_the_engines(tmp_path: Path) -> None:
    @hx.task
    def path_of_task() -> str | None:
        return os.environ.get("PYTHONPATH")

    @hx.shell(use_shell=True)
    def path_of_command() -> str:
        return 'echo "[$PYTHONPATH]" > seen.txt'

    with hx.Workflow("paths", workdir=tmp_path) as wf:
        p = path_of_task()
        path_of_command()
    old = os.environ.pop("PYTHONPATH", None)
    try:
        run = wf.run(settings=make_settings(tmp_path))
    finally:
        if old is not None:
            os.environ["PYTHONPATH"] = old
    assert run.ok
    assert p.result() is None
    assert (tmp_path / "seen.txt").read_text() == "[]\n"


def test_bad_cwd_and_many_tiny_tasks(tmp_path: Path) -> None:
    @hx.shell(cpus=0.05)
    def tiny(i: int) -> list[str]:
        return ["true"]

    with hx.Workflow("tiny", workdir=tmp_path) as wf:
        for i in range(40):
            tiny(i)
    run = wf.run(settings=make_settings(tmp_path, HEXFLOW_CPUS="1"))
    assert run.ok  # 20 fit at once; the pool queues what exceeds its worker limit

    from hexflow.model import Resources

    store = MemoryStore()
    engine = Engine(store, LocalExecutor(cpus=1, scratch_dir=str(tmp_path / "s")))
    spec = TaskSpec(
        id="lost", name="lost", kind=TaskKind.SHELL, command=("true",), cwd="no/such/dir",
        resources=Resources(cpus=1),
    )  # fmt: skip
    engine.create_run("cwd", [spec], workdir=str(tmp_path), run_id="c1", config={})
    engine.run("c1")
    rec = store.get_task("c1", "lost")
    assert rec.state is TaskState.FAILED and rec.reason == "launch_failed"
    assert "does not exist" in (rec.error or "")
