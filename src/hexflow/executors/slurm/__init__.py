"""The Slurm executor: each task is a Slurm job that the batch system places.

``script`` builds sbatch scripts and ``parse`` reads squeue/sacct/sinfo output (both pure);
``commands`` is the one subprocess seam; ``runner`` is what a job runs; ``outcome`` maps a
job's end to a ``TaskEnded``. ``SlurmExecutor`` is imported on first use, so that a job's
runner does not load the engine side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hexflow.executors.slurm.config import SlurmConfig
    from hexflow.executors.slurm.executor import SlurmExecutor

__all__ = ["SlurmConfig", "SlurmExecutor"]


def __getattr__(name: str) -> Any:
    if name == "SlurmExecutor":
        from hexflow.executors.slurm.executor import SlurmExecutor

        return SlurmExecutor
    if name == "SlurmConfig":
        from hexflow.executors.slurm.config import SlurmConfig

        return SlurmConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
