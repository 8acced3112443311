"""The executor contract on the local executor (worker processes on this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hexflow.executors.base import Executor
from hexflow.executors.local import LocalExecutor
from tests.executor_contract import ExecutorContract

pytestmark = pytest.mark.timeout(120)


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Executor:
        return LocalExecutor(cpus=4, scratch_dir=str(tmp_path / "scratch"), kill_grace=0.5)
