"""The executor contract on the local executor (worker processes on this machine)."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hexflow.executors.base import Executor
from hexflow.executors.local import LocalExecutor
from hexflow.executors.local.executor import WarmLocalExecutor
from tests.executor_contract import ExecutorContract, cancel_when, drive, gone, python_spec

pytestmark = pytest.mark.timeout(120)


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Executor:
        return LocalExecutor(cpus=4, scratch_dir=str(tmp_path / "scratch"), kill_grace=0.5)


class TestWarmLocalExecutor(ExecutorContract):
    """The same contract when the executor's idle workers outlive each run."""

    @pytest.fixture
    def executor(self, tmp_path: Path) -> Iterator[Executor]:
        warm = WarmLocalExecutor(cpus=4, scratch_dir=str(tmp_path / "scratch"), kill_grace=0.5)
        yield warm
        warm.close()


def _pid() -> int:
    import os

    return os.getpid()


def test_warm_workers_serve_run_after_run_and_stop_on_close(tmp_path: Path) -> None:
    warm = WarmLocalExecutor(cpus=1, scratch_dir=str(tmp_path / "scratch"), kill_grace=0.5)
    try:
        pids = []
        for i in range(3):  # three runs, each on a loop of its own (asyncio.run)
            run, recs = drive(warm, [python_spec("p", _pid)], tmp_path / f"r{i}")
            assert run.state.value == "succeeded"
            pids.append(pickle.loads(recs["p"].result))
        assert len(set(pids)) == 1  # one worker process, started once
        # a run cancelled while its task runs: that worker is stopped, the next run works
        marker = tmp_path / "started"

        def long_job(marker: str) -> None:
            open(marker, "w").close()
            time.sleep(30)

        run, recs = drive(
            warm, [python_spec("long", long_job, str(marker))], tmp_path / "c",
            during=cancel_when(marker, "long"),
        )  # fmt: skip
        assert recs["long"].state.value == "cancelled"
        gone(pids[0])
        run, recs = drive(warm, [python_spec("p", _pid)], tmp_path / "after")
        last = pickle.loads(recs["p"].result)
        assert run.state.value == "succeeded" and last != pids[0]
    finally:
        warm.close()
    gone(last)
