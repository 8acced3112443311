"""Choosing the executor from the environment (HEXFLOW_EXECUTOR, HEXFLOW_SLURM_*)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hexflow.errors import SpecError
from hexflow.executors.local import LocalExecutor
from hexflow.executors.slurm import SlurmExecutor
from hexflow.flow.runtime import make_engine
from hexflow.settings import Settings
from hexflow.store import MemoryStore


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(env={"HEXFLOW_HOME": str(tmp_path / ".hexflow"), **env}, cwd=tmp_path)


def test_the_local_executor_is_the_default(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.executor.name == "local"
    assert isinstance(make_engine(s, MemoryStore()).executor, LocalExecutor)


def test_slurm_settings_reach_the_executor(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        HEXFLOW_EXECUTOR="Slurm",
        HEXFLOW_SLURM_PARTITION="regular",
        HEXFLOW_SLURM_GPU_PARTITION="gpu",
        HEXFLOW_SLURM_ACCOUNT="m1234",
        HEXFLOW_SLURM_QOS="realtime=realtime, preempt=low",
        HEXFLOW_SLURM_POLL="10s",
        HEXFLOW_KILL_GRACE="2",
    )
    executor = make_engine(s, MemoryStore()).executor
    assert isinstance(executor, SlurmExecutor) and executor.places_work
    config = executor.config
    assert (config.partition, config.gpu_partition, config.account) == ("regular", "gpu", "m1234")
    assert dict(config.qos) == {"realtime": "realtime", "preempt": "low"}
    assert (config.poll_interval, config.kill_grace) == (10.0, 2.0)
    assert config.job_dir == str(s.home / "slurm")


@pytest.mark.parametrize(
    "env,message",
    [
        ({"HEXFLOW_EXECUTOR": "pbs"}, "unknown executor 'pbs'"),
        ({"HEXFLOW_SLURM_QOS": "fast"}, "cannot read 'fast'"),
        ({"HEXFLOW_SLURM_QOS": "turbo=high"}, "cannot read 'turbo=high'"),
        ({"HEXFLOW_SLURM_POLL": "soon"}, "HEXFLOW_SLURM_POLL"),
    ],
)
def test_bad_executor_settings_are_refused(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        settings(tmp_path, **env)
