"""Providers: where pilot allocations come from (Parsl's provider axis).

A provider starts a pilot command in an allocation of given size and walltime, tells
which of its allocations are pending, running or ended, and cancels them. All calls block
(the executor makes them from worker threads). ``LocalProvider`` starts pilots as
processes on this machine (tests, a laptop); the Slurm one (``executors/slurm/provider``)
submits each pilot as a batch job. The executor receives a provider; it never imports one.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hexflow.model.sites import Health, SiteState

PENDING, RUNNING, ENDED = "pending", "running", "ended"


@dataclass(frozen=True, slots=True)
class Block:
    """One allocation for one pilot (one node)."""

    name: str
    cpus: int
    memory: int  # bytes; 0: the provider's default
    gpus: int
    walltime: float  # seconds
    log: str  # where the allocation's own output goes


class Provider(Protocol):
    name: str

    def submit(self, block: Block, argv: Sequence[str], env: Mapping[str, str]) -> str:
        """Start ``argv`` in a new allocation; its job id."""
        ...

    def status(self, jobs: Sequence[str]) -> dict[str, str]:
        """pending, running or ended, for each job (unknown jobs: ended)."""
        ...

    def cancel(self, jobs: Sequence[str]) -> None: ...

    def health(self) -> Health: ...


class LocalProvider:
    """Pilots as processes of this machine, each in a session of its own."""

    name = "local"

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def submit(self, block: Block, argv: Sequence[str], env: Mapping[str, str]) -> str:
        with open(block.log, "ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - an argument list
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **env},
            )
        job = str(proc.pid)
        self._procs[job] = proc
        return job

    def status(self, jobs: Sequence[str]) -> dict[str, str]:
        out = {}
        for job in jobs:
            proc = self._procs.get(job)
            if proc is not None:
                out[job] = RUNNING if proc.poll() is None else ENDED
            else:  # not started by this provider (a previous engine): is the process there?
                out[job] = RUNNING if job.isdigit() and _alive(int(job)) else ENDED
        return out

    def cancel(self, jobs: Sequence[str]) -> None:
        for job in jobs:
            if not job.isdigit():
                continue
            try:
                os.killpg(int(job), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc = self._procs.pop(job, None)
            if proc is not None:
                proc.wait()

    def health(self) -> Health:
        return Health(SiteState.UP, "pilots run on this machine")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["ENDED", "PENDING", "RUNNING", "Block", "LocalProvider", "Provider"]
