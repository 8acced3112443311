"""SlurmConfig: where the Slurm executor submits and how it talks to the batch system."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SlurmConfig:
    """``job_dir`` must be on a file system the compute nodes share (the hexflow home
    usually is): job files, answers and batch scripts go there, per run."""

    job_dir: str = ".hexflow/slurm"
    partition: str | None = None  # None: the cluster's default partition
    gpu_partition: str | None = None  # for tasks that ask for GPUs, if set
    account: str | None = None
    qos: Mapping[str, str] = field(default_factory=dict)  # hexflow QoS -> Slurm QoS
    poll_interval: float = 3.0  # seconds between two squeue calls (one for all jobs)
    kill_grace: float = 5.0  # SIGTERM -> SIGKILL when the runner enforces a time limit
    python: str = sys.executable  # the interpreter jobs run the runner with
    max_array: int = 1000  # elements per job array (Slurm's MaxArraySize is 1001 by default)
    requeue: bool = False  # False: preemption and node failures come back to hexflow
    command_timeout: float = 30.0  # for each sbatch/squeue/sacct/scancel call
    lost_after: int = 3  # polls a job may be unknown to squeue and sacct before it is lost
    # a job that reached its node and is NODE_FAIL: seconds to wait for the runner's answer
    # (the proof its command stopped) before reporting the end; past Slurm's KillWait
    # (30 s by default) a runner that has not answered was killed with its command
    stop_wait: float = 40.0
    conf: str | None = None  # the cluster's slurm.conf (SLURM_CONF), if not the default one
