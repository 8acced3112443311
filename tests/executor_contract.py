"""The Executor contract: one suite that every executor must pass (local, Slurm, Dask).

A test module subclasses ``ExecutorContract`` and provides an ``executor`` fixture that
returns a fresh, not yet started executor (see tests/test_executor_local.py, _slurm.py and
_dask.py). ``shell = False`` marks an executor that runs Python functions only: its shell
tests are skipped with that reason. Each test drives a real engine (MemoryStore) over the
executor, so what is checked is what a user sees: states, reasons, results, logs.

Task functions are defined inside the tests, so they are serialized by value and a worker
(a process here, a Slurm job, a Dask worker) needs nothing but hexflow to run them.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from hexflow.engine import Engine
from hexflow.executors.base import Executor
from hexflow.flow.serialize import dumps_call, dumps_function
from hexflow.model import Resources, RetryPolicy, RunRecord, TaskKind, TaskRecord, TaskSpec
from hexflow.model.refs import TaskRef
from hexflow.store import MemoryStore, Store
from tests.helpers import live, wait_for

During = Callable[[Store, str, Path], Awaitable[None]]


def python_spec(task_id: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> TaskSpec:
    blob = dumps_function(fn, task_id)
    deps = tuple(a.task_id for a in args if isinstance(a, TaskRef))
    return TaskSpec(
        id=task_id,
        name=task_id,
        kind=TaskKind.PYTHON,
        payload=dumps_call(blob, args, {}, task_id),
        deps=deps,
        inputs=deps,
        **kw,
    )


def shell_spec(task_id: str, script: str, **kw: Any) -> TaskSpec:
    return TaskSpec(
        id=task_id, name=task_id, kind=TaskKind.SHELL, command=("sh", "-c", script), **kw
    )


def drive(
    executor: Executor,
    specs: Sequence[TaskSpec],
    workdir: Path,
    *,
    during: During | None = None,
    timeout: float = 90.0,
) -> tuple[RunRecord, dict[str, TaskRecord]]:
    """Run ``specs`` to the end on ``executor``; ``during`` runs alongside (cancels...)."""
    store = MemoryStore()
    engine = Engine(store, executor, cancel_poll_interval=0.1)
    run = engine.create_run(
        "contract",
        specs,
        workdir=str(workdir),
        run_id=uuid.uuid4().hex[:12],
        config={"home": str(workdir / ".hexflow")},
    )

    async def main() -> RunRecord:
        driving = asyncio.ensure_future(engine.drive(run.id))
        if during is not None:
            await asyncio.wait_for(during(store, run.id, workdir), timeout)
        return await asyncio.wait_for(driving, timeout)

    final = asyncio.run(main())
    return final, dict(engine.records)


def log_text(workdir: Path, run: RunRecord, task_id: str, stream: str, attempt: int = 1) -> str:
    path = workdir / ".hexflow" / "runs" / run.id / "logs" / f"{task_id}.{attempt}.{stream}"
    return path.read_text() if path.exists() else ""


async def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {path}")
        await asyncio.sleep(0.05)


def gone(pid: int) -> None:
    """The command's process is stopped (on this machine: local, or the Slurm node here)."""
    wait_for(lambda: not live(pid), timeout=15, what=f"process {pid} to be stopped")


def cancel_when(marker: Path, task_id: str) -> During:
    """Cancel ``task_id`` (as `hexflow cancel` does) once it has created ``marker``."""

    async def during(store: Store, run_id: str, workdir: Path) -> None:
        await wait_for_file(marker)
        store.request_cancel(run_id, task_id)

    return during


class ExecutorContract:
    shell = True  # False: the executor runs Python functions only

    @pytest.fixture
    def executor(self, tmp_path: Path) -> Executor:
        raise NotImplementedError

    def needs_shell(self) -> None:
        if not self.shell:
            pytest.skip("this executor runs Python functions only (no shell tasks)")

    # ---------------------------------------------------------------- results
    def test_python_result_and_a_dependency(self, executor: Executor, tmp_path: Path) -> None:
        def source(n: int) -> dict[str, Any]:
            return {"n": n, "squares": [i * i for i in range(n)]}

        def total(data: dict[str, Any]) -> int:
            return sum(data["squares"])

        run, recs = drive(
            executor,
            [python_spec("source", source, 4), python_spec("total", total, TaskRef("source"))],
            tmp_path,
        )
        assert run.state.value == "succeeded", {k: r.error for k, r in recs.items()}
        assert recs["source"].result is not None and recs["total"].result is not None
        assert pickle.loads(recs["source"].result) == {"n": 4, "squares": [0, 1, 4, 9]}
        assert pickle.loads(recs["total"].result) == 14

    def test_shell_success_and_failure_exit_code(self, executor: Executor, tmp_path: Path) -> None:
        self.needs_shell()
        run, recs = drive(
            executor,
            [shell_spec("ok", "echo fine"), shell_spec("bad", "echo oops >&2; exit 3")],
            tmp_path,
        )
        assert recs["ok"].state.value == "succeeded" and recs["ok"].exit_code == 0
        bad = recs["bad"]
        assert bad.state.value == "failed"
        assert (bad.reason, bad.exit_code) == ("exit_code", 3)
        assert "exited with code 3" in (bad.error or "")
        assert "oops" in (bad.traceback or "")  # the tail of its stderr
        assert "oops" in log_text(tmp_path, run, "bad", "err")

    def test_python_exception_carries_its_traceback(
        self, executor: Executor, tmp_path: Path
    ) -> None:
        def parse_record(value: int) -> int:
            raise ValueError(f"bad record {value}")

        run, recs = drive(executor, [python_spec("parse", parse_record, 7)], tmp_path)
        rec = recs["parse"]
        assert rec.state.value == "failed" and rec.reason == "error"
        assert "ValueError: bad record 7" in (rec.error or "")
        assert "parse_record" in (rec.traceback or "") and "Traceback" in (rec.traceback or "")
        assert rec.result is not None
        exc = pickle.loads(rec.result)
        assert isinstance(exc, ValueError) and str(exc) == "bad record 7"
        assert "ValueError: bad record 7" in log_text(tmp_path, run, "parse", "err")

    def test_a_failed_attempt_is_retried_with_its_own_logs(
        self, executor: Executor, tmp_path: Path
    ) -> None:
        def flaky(marker: str) -> str:
            if not os.path.exists(marker):
                open(marker, "w").close()
                print("first attempt fails")
                raise RuntimeError("transient")
            print("second attempt works")
            return "done"

        spec = python_spec(
            "flaky", flaky, str(tmp_path / "marker"), retry=RetryPolicy(retries=1, backoff=0)
        )
        run, recs = drive(executor, [spec], tmp_path)
        rec = recs["flaky"]
        assert rec.state.value == "succeeded" and rec.attempt == 2
        assert pickle.loads(rec.result or b"") == "done"
        assert "first attempt fails" in log_text(tmp_path, run, "flaky", "out", 1)
        assert "second attempt works" in log_text(tmp_path, run, "flaky", "out", 2)

    # ---------------------------------------------------------------- time limits
    def test_python_timeout(self, executor: Executor, tmp_path: Path) -> None:
        def stuck() -> None:
            for _ in range(80):
                time.sleep(0.1)

        started = time.monotonic()
        _, recs = drive(executor, [python_spec("stuck", stuck, timeout=1.0)], tmp_path)
        rec = recs["stuck"]
        assert rec.state.value == "failed" and rec.reason == "timeout", rec.error
        assert "timeout of 1s" in (rec.error or "")
        assert time.monotonic() - started < 7.5  # stopped, not run to its end

    def test_shell_walltime_stops_the_command(self, executor: Executor, tmp_path: Path) -> None:
        self.needs_shell()
        pid = tmp_path / "pid"
        spec = shell_spec(
            "sleepy", f"echo $$ > {pid}; sleep 20", resources=Resources.parse(walltime="1")
        )
        started = time.monotonic()
        _, recs = drive(executor, [spec], tmp_path)
        rec = recs["sleepy"]
        assert rec.state.value == "failed" and rec.reason == "walltime", rec.error
        assert time.monotonic() - started < 15
        gone(int(pid.read_text()))

    # ---------------------------------------------------------------- cancel
    def test_cancel_a_running_python_task(self, executor: Executor, tmp_path: Path) -> None:
        marker = tmp_path / "python-started"

        def long_job(marker: str) -> str:
            open(marker, "w").close()
            for _ in range(80):
                time.sleep(0.1)
            return "finished"

        started = time.monotonic()
        run, recs = drive(
            executor,
            [python_spec("long", long_job, str(marker))],
            tmp_path,
            during=cancel_when(marker, "long"),
        )
        rec = recs["long"]
        assert rec.state.value == "cancelled" and rec.reason == "cancelled"
        assert run.state.value in ("failed", "cancelled")
        assert time.monotonic() - started < 7.5

    def test_cancel_a_running_command(self, executor: Executor, tmp_path: Path) -> None:
        self.needs_shell()
        marker = tmp_path / "shell-started"
        spec = shell_spec("long", f"echo $$ > {marker}.pid; touch {marker}; sleep 20")
        started = time.monotonic()
        _, recs = drive(executor, [spec], tmp_path, during=cancel_when(marker, "long"))
        assert recs["long"].state.value == "cancelled"
        assert time.monotonic() - started < 15
        gone(int(Path(f"{marker}.pid").read_text()))

    # ---------------------------------------------------------------- environment
    def test_env_cwd_and_logs_of_a_python_task(self, executor: Executor, tmp_path: Path) -> None:
        (tmp_path / "sub").mkdir()

        def where() -> dict[str, str]:
            import sys

            print("to stdout")
            print("to stderr", file=sys.stderr)
            return {
                "task": os.environ["HEXFLOW_TASK_ID"],
                "mine": os.environ["MY_SETTING"],
                "cwd": os.getcwd(),
            }

        spec = python_spec("where", where, env={"MY_SETTING": "a b $HOME 'q'"}, cwd="sub")
        run, recs = drive(executor, [spec], tmp_path)
        rec = recs["where"]
        assert rec.state.value == "succeeded", rec.error
        seen = pickle.loads(rec.result or b"")
        assert seen == {"task": "where", "mine": "a b $HOME 'q'", "cwd": str(tmp_path / "sub")}
        assert "to stdout" in log_text(tmp_path, run, "where", "out")
        assert "to stderr" in log_text(tmp_path, run, "where", "err")

    def test_env_cwd_and_logs_of_a_command(self, executor: Executor, tmp_path: Path) -> None:
        self.needs_shell()
        (tmp_path / "sub").mkdir()
        spec = shell_spec(
            "where",
            'echo "task=$HEXFLOW_TASK_ID mine=$MY_SETTING"; pwd; echo to-stderr >&2',
            env={"MY_SETTING": "a b; $(touch pwned)"},
            cwd="sub",
        )
        run, recs = drive(executor, [spec], tmp_path)
        assert recs["where"].state.value == "succeeded", recs["where"].error
        out = log_text(tmp_path, run, "where", "out").splitlines()
        assert out == ["task=where mine=a b; $(touch pwned)", str(tmp_path / "sub")]
        assert "to-stderr" in log_text(tmp_path, run, "where", "err")
        assert not (tmp_path / "sub" / "pwned").exists()

    # ---------------------------------------------------------------- many
    def test_many_small_tasks(self, executor: Executor, tmp_path: Path) -> None:
        def square(i: int) -> int:
            return i * i

        specs = [python_spec(f"sq{i}", square, i) for i in range(12)]
        run, recs = drive(executor, specs, tmp_path)
        assert run.state.value == "succeeded"
        assert sorted(pickle.loads(r.result or b"") for r in recs.values()) == [
            i * i for i in range(12)
        ]
