"""The executors other than the local one, built from Settings (``HEXFLOW_EXECUTOR``).

Imported lazily: Slurm's executor needs nothing extra, Dask's imports Dask (an optional
dependency) only when it is chosen.
"""

from __future__ import annotations

from hexflow.executors.base import Executor
from hexflow.settings import Settings


def remote_executor(settings: Settings) -> Executor | None:
    """The Slurm, Dask or pilot executor the settings choose; None for the local one."""
    chosen = settings.executor
    if chosen.name == "slurm":
        from hexflow.executors.slurm import SlurmConfig, SlurmExecutor

        config = SlurmConfig(
            job_dir=str(settings.home / "slurm"),
            partition=chosen.slurm_partition,
            gpu_partition=chosen.slurm_gpu_partition,
            account=chosen.slurm_account,
            qos=dict(chosen.slurm_qos),
            poll_interval=chosen.slurm_poll,
            kill_grace=settings.kill_grace,
        )
        from hexflow.flow.runtime import container_config

        return SlurmExecutor(config, containers=container_config(settings))
    if chosen.name == "dask":
        from hexflow.executors.dask import DaskExecutor

        workers = int(settings.cpus) if settings.cpus else None
        return DaskExecutor(
            chosen.dask_scheduler,
            workers=max(1, workers) if workers is not None else None,
            local_directory=str(settings.home / "dask"),
        )
    if chosen.name == "pilot":
        from hexflow.flow.sites import implicit_sites, pilot_executor

        return pilot_executor(implicit_sites(settings).sites[0], settings)
    return None


__all__ = ["remote_executor"]
