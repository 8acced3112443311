"""The one place that runs Slurm's commands: sbatch, squeue, sacct, scancel, sinfo.

Each call is an argument list (never a shell), has a timeout, and turns a failure into a
``SlurmCommandError`` that names the command, its exit code and what it printed, and says
whether trying again later may help (``transient``: the controller did not answer). Blocking:
the executor calls it from worker threads. Tests replace it with a fake of the same shape.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from hexflow.errors import ExecutorError
from hexflow.executors.slurm.parse import (
    SACCT_FIELDS,
    SINFO_FORMAT,
    SQUEUE_FORMAT,
    AcctRecord,
    PartitionInfo,
    QueueEntry,
    parse_sacct,
    parse_sbatch,
    parse_sinfo,
    parse_squeue,
)

# What slurmctld (or slurmdbd) says when it is busy or unreachable: worth another try.
_TRANSIENT = (
    "socket timed out",
    "unable to contact slurm controller",
    "temporarily unable",
    "connection refused",
    "slurm_persist_conn_open",
    "try again",
    "resource temporarily unavailable",
)
_ACCOUNTING_OFF = "accounting storage is disabled"


class SlurmCommandError(ExecutorError):
    """A Slurm command failed; ``fields``: command, exit_code, stderr, transient."""

    @property
    def transient(self) -> bool:
        return bool(self.fields.get("transient"))


class SlurmCommands:
    """Runs Slurm's client commands found on ``PATH`` (or in ``bin_dir``)."""

    def __init__(
        self, *, timeout: float = 30.0, bin_dir: str | None = None, conf: str | None = None
    ) -> None:
        self.timeout = timeout
        self.bin_dir = bin_dir
        # another cluster's slurm.conf (a site of its own): SLURM_CONF for every command
        self.env = {**os.environ, "SLURM_CONF": conf} if conf else None

    def available(self) -> bool:
        return self._path("sbatch") is not None

    def sbatch(self, script: str) -> str:
        """Submit the batch script at path ``script``; returns the job id."""
        return parse_sbatch(self.run(["sbatch", "--parsable", script]))

    def squeue(self, job_ids: Sequence[str]) -> list[QueueEntry]:
        """One call for all ``job_ids`` (array elements one per line), finished ones included
        while the controller remembers them (``MinJobAge``). Unknown ids are left out."""
        if not job_ids:
            return []
        argv = ["squeue", "-h", "-r", "-t", "all", "-o", SQUEUE_FORMAT, "-j", ",".join(job_ids)]
        try:
            return parse_squeue(self.run(argv))
        except SlurmCommandError as exc:
            # squeue fails when *every* id it is given is unknown (a single purged job)
            if "invalid job id" in str(exc.fields.get("stderr", "")).lower():
                return []
            raise

    def sacct(self, job_ids: Sequence[str]) -> list[AcctRecord]:
        """The accounting records of ``job_ids``, in one call. Without slurmdbd, Slurm keeps
        only its job completion log: read that (``sacct -c``) instead."""
        if not job_ids:
            return []
        fields = ",".join(SACCT_FIELDS)
        argv = ["sacct", "-X", "-n", "-P", "-o", fields, "-j", ",".join(job_ids)]
        try:
            text = self.run(argv)
        except SlurmCommandError as exc:
            if _ACCOUNTING_OFF not in str(exc.fields.get("stderr", "")).lower():
                raise
            text = self.run(["sacct", "-c", "-n", "-P", "-o", fields, "-j", ",".join(job_ids)])
        return parse_sacct(text, SACCT_FIELDS)

    def scancel(self, job_ids: Sequence[str], signal: str | None = None) -> None:
        """Cancel ``job_ids``; with ``signal`` (e.g. ``TERM``), only signal them: the batch
        script and every step (``--full``), so the runner hears it."""
        if not job_ids:
            return
        argv = ["scancel"]
        if signal is not None:
            argv += [f"--signal={signal}", "--full"]
        self.run([*argv, *job_ids])

    def sinfo(self) -> list[PartitionInfo]:
        return parse_sinfo(self.run(["sinfo", "-h", "-o", SINFO_FORMAT]))

    def run(self, argv: list[str]) -> str:
        """Run one command; its stdout, or ``SlurmCommandError``."""
        path = self._path(argv[0])
        if path is None:
            raise SlurmCommandError(
                f"{argv[0]} not found: Slurm's client commands are not installed here",
                hint="run hexflow on a login node of the cluster, or choose another executor "
                "(HEXFLOW_EXECUTOR=local)",
                command=argv[0],
                transient=False,
            )
        try:
            proc = subprocess.run(  # noqa: S603 - an argument list, no shell
                [path, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        except subprocess.TimeoutExpired:
            raise SlurmCommandError(
                f"{argv[0]} did not answer within {self.timeout:g}s",
                hint="the Slurm controller may be overloaded; hexflow tries again later",
                command=" ".join(argv[:4]),
                transient=True,
            ) from None
        except OSError as exc:
            raise SlurmCommandError(
                f"cannot run {argv[0]}: {exc}", command=argv[0], transient=False
            ) from None
        if proc.returncode != 0:
            stderr = (proc.stderr or proc.stdout).strip()
            transient = any(t in stderr.lower() for t in _TRANSIENT)
            raise SlurmCommandError(
                f"{argv[0]} failed (exit code {proc.returncode}): {stderr[-500:] or 'no message'}",
                command=" ".join(argv[:4]),
                exit_code=proc.returncode,
                stderr=stderr[-2000:],
                transient=transient,
            )
        return proc.stdout

    def _path(self, name: str) -> str | None:
        if self.bin_dir:
            path = os.path.join(self.bin_dir, name)
            return path if os.access(path, os.X_OK) else None
        return shutil.which(name)


__all__ = ["SlurmCommandError", "SlurmCommands"]
