"""SlurmProvider: pilot allocations as Slurm batch jobs (the pilot executor's provider).

Each pilot is one job on one node, asking for the pilot's cpus, memory, GPUs and walltime
(``--time`` rounded up to whole minutes: the pilot itself keeps to the walltime it was
given, in seconds). Status is one ``squeue`` for all pilot jobs. Structurally a
``executors.pilot.provider.Provider``; this package does not import the pilot package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from hexflow.executors.slurm.commands import SlurmCommandError, SlurmCommands
from hexflow.executors.slurm.health import slurm_health
from hexflow.executors.slurm.outcome import ENDED, RUNNING
from hexflow.executors.slurm.script import render, request_for
from hexflow.model import Resources
from hexflow.model.sites import Health


class BlockLike(Protocol):  # executors.pilot.provider.Block, structurally
    @property
    def name(self) -> str: ...
    @property
    def cpus(self) -> int: ...
    @property
    def memory(self) -> int: ...
    @property
    def gpus(self) -> int: ...
    @property
    def walltime(self) -> float: ...
    @property
    def log(self) -> str: ...


class SlurmProvider:
    name = "slurm"

    def __init__(
        self,
        commands: SlurmCommands | None = None,
        *,
        job_dir: str,
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
    ) -> None:
        self.commands = commands or SlurmCommands()
        self.job_dir = os.path.abspath(job_dir)
        self.partition = partition
        self.account = account
        self.qos = qos

    def submit(self, block: BlockLike, argv: Sequence[str], env: Mapping[str, str]) -> str:
        os.makedirs(self.job_dir, mode=0o700, exist_ok=True)
        request = request_for(
            Resources(cpus=block.cpus, memory=block.memory, gpus=block.gpus),
            name=f"hx-pilot-{block.name}",
            time_limit=block.walltime,
            partition=self.partition,
            account=self.account,
            qos=self.qos,
        )
        request = replace(request, output=block.log, chdir=self.job_dir, env=dict(env))
        script = os.path.join(self.job_dir, f"{block.name}.sh")
        with open(script, "w") as f:
            f.write(render(request, list(argv)))
        return self.commands.sbatch(script)

    def status(self, jobs: Sequence[str]) -> dict[str, str]:
        seen = {e.job_id: e.state for e in self.commands.squeue(list(jobs))}
        out = {}
        for job in jobs:
            state = seen.get(job)
            if state is None or state in ENDED:
                out[job] = "ended"
            elif state in RUNNING:
                out[job] = "running"
            else:
                out[job] = "pending"
        return out

    def cancel(self, jobs: Sequence[str]) -> None:
        """SIGKILL to every process of the running jobs first (a hung pilot is not given
        Slurm's KillWait to finish a task that another pilot will run), then cancel."""
        try:
            self.commands.scancel(list(jobs), signal="KILL")
        except SlurmCommandError:
            pass  # pending jobs have nothing to signal
        self.commands.scancel(list(jobs))

    def health(self) -> Health:
        return slurm_health(self.commands, [self.partition] if self.partition else [])


__all__ = ["SlurmProvider"]
