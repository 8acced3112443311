"""Parsers for what Slurm's commands print: ``sbatch --parsable``, ``squeue``, ``sacct
--parsable2`` and ``sinfo``. Pure: text in, values out.

Job ids are kept as Slurm prints them: ``123`` for a job, ``123_4`` for element 4 of array
job 123 (``raw_id`` is the element's own numeric id once it started). States are reduced to
their name (``CANCELLED by 0`` → ``CANCELLED``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from hexflow.errors import ExecutorError

# squeue -o: job id (123 or 123_4 with -r), numeric id, state, reason
SQUEUE_FORMAT = "%i|%A|%T|%r"
# sacct -o: what the executor asks for (JobID names array elements 123_4)
SACCT_FIELDS = ("JobID", "JobIDRaw", "JobName", "State", "ExitCode", "Start", "End")
SINFO_FORMAT = "%P|%a|%D|%t"

_SBATCH = re.compile(r"^\s*(\d+)(?:;(\S+))?\s*$")


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    raw_id: str
    state: str
    reason: str


@dataclass(frozen=True)
class AcctRecord:
    """One line of ``sacct --parsable2``: a job (``step`` None) or one of its steps."""

    job_id: str
    step: str | None
    state: str
    exit_code: int | None
    signal: int | None
    raw_id: str | None = None
    name: str | None = None
    start: float | None = None
    end: float | None = None
    fields: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    default: bool
    available: bool
    nodes: int
    node_state: str


def parse_sbatch(text: str) -> str:
    """The job id from ``sbatch --parsable`` (``123`` or ``123;cluster``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    match = _SBATCH.match(lines[-1]) if lines else None
    if match is None:
        raise ExecutorError(
            f"sbatch printed no job id: {text.strip()[:200]!r}",
            hint="run `sbatch --parsable` by hand to see what Slurm says",
        )
    return match.group(1)


def state_name(text: str) -> str:
    """``CANCELLED by 1234`` → ``CANCELLED``; ``RUNNING+`` → ``RUNNING``."""
    word = text.strip().split(" ", 1)[0]
    return word.rstrip("+").upper()


def parse_squeue(text: str) -> list[QueueEntry]:
    """Lines of ``squeue -h -r -o '%i|%A|%T|%r'``; blank lines are skipped."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.strip().split("|", 3)
        if len(parts) != 4:
            raise ExecutorError(
                f"cannot read squeue line {line!r}", hint=f"expected {SQUEUE_FORMAT}"
            )
        job_id, raw_id, state, reason = parts
        entries.append(QueueEntry(job_id, raw_id, state_name(state), reason))
    return entries


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's ``ExitCode`` ``code:signal`` (``3:0``, ``0:15``); empty → (None, None)."""
    text = text.strip()
    if not text:
        return None, None
    code, _, sig = text.partition(":")
    try:
        return int(code), int(sig) if sig else 0
    except ValueError:
        return None, None


def parse_time(text: str) -> float | None:
    """sacct's ``2017-03-20T01:59:02`` (local time) as epoch seconds; ``Unknown`` → None."""
    text = text.strip()
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def parse_sacct(text: str, fields: Sequence[str] | None = None) -> list[AcctRecord]:
    """``sacct --parsable2`` output: with its header line (``fields`` None), or without
    one (``-n``) for the ``fields`` asked for. Needs a ``JobID`` or ``JobIDRaw`` field."""
    lines = [line for line in text.splitlines() if line.strip()]
    if fields is None:
        if not lines:
            return []
        fields, lines = lines[0].split("|"), lines[1:]
    names = [f.strip() for f in fields]
    key = "JobID" if "JobID" in names else "JobIDRaw"
    if key not in names:
        raise ExecutorError("sacct output needs a JobID or JobIDRaw column", fields=names)
    records = []
    for line in lines:
        values = line.split("|")
        if len(values) != len(names):
            raise ExecutorError(
                f"cannot read sacct line {line!r}: {len(values)} fields, expected {len(names)}",
                fields=names,
            )
        row = dict(zip(names, values, strict=True))
        job, _, step = row[key].partition(".")
        code, sig = parse_exit_code(row.get("ExitCode", ""))
        records.append(
            AcctRecord(
                job_id=job,
                step=step or None,
                state=state_name(row.get("State", "")),
                exit_code=code,
                signal=sig,
                raw_id=row.get("JobIDRaw", "").partition(".")[0] or None,
                name=row.get("JobName") or None,
                start=parse_time(row.get("Start", "")),
                end=parse_time(row.get("End", "")),
                fields=row,
            )
        )
    return records


def allocations(records: Sequence[AcctRecord]) -> dict[str, AcctRecord]:
    """The job-level records (no step), by job id; also by numeric id when it differs."""
    jobs: dict[str, AcctRecord] = {}
    for rec in records:
        if rec.step is None:
            jobs[rec.job_id] = rec
            if rec.raw_id and rec.raw_id != rec.job_id:
                jobs.setdefault(rec.raw_id, rec)
    return jobs


def parse_sinfo(text: str) -> list[PartitionInfo]:
    """``sinfo -h -o '%P|%a|%D|%t'``: one line per partition and node state."""
    parts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.strip().split("|")
        if len(values) != 4 or not values[2].isdigit():
            raise ExecutorError(f"cannot read sinfo line {line!r}", hint=f"expected {SINFO_FORMAT}")
        name, avail, nodes, state = values
        parts.append(
            PartitionInfo(
                name=name.rstrip("*"),
                default=name.endswith("*"),
                available=avail == "up",
                nodes=int(nodes),
                node_state=state,
            )
        )
    return parts


__all__ = [
    "SACCT_FIELDS",
    "SINFO_FORMAT",
    "SQUEUE_FORMAT",
    "AcctRecord",
    "PartitionInfo",
    "QueueEntry",
    "allocations",
    "parse_exit_code",
    "parse_sacct",
    "parse_sbatch",
    "parse_sinfo",
    "parse_squeue",
    "state_name",
]
