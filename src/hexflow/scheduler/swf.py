"""Reader and writer of the Standard Workload Format (SWF) of the Parallel Workloads Archive.

An SWF log is one job per line, 18 whitespace-separated numeric fields, with ``;`` comment
lines (the header holds ``Key: value`` pairs such as ``MaxProcs``). ``parse_swf_line`` and
``format_swf`` are pure (what ``format_swf`` writes, ``parse_swf`` reads back as the same
jobs; fields ``SwfJob`` does not keep are written as ``-1``); ``read_swf``/``write_swf`` are
the thin functions that open files (gzip when the name ends in ``.gz``). A malformed line
raises ``SpecError`` with ``line`` and ``field`` set.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hexflow.errors import SpecError

# The 18 SWF fields, in order (1-based in the format's documentation).
SWF_FIELDS: tuple[str, ...] = (
    "job_id",
    "submit",
    "wait",
    "run_time",
    "allocated_procs",
    "avg_cpu_time",
    "used_memory",
    "requested_procs",
    "requested_time",
    "requested_memory",
    "status",
    "user",
    "group",
    "executable",
    "queue",
    "partition",
    "preceding_job",
    "think_time",
)


@dataclass(frozen=True, slots=True)
class SwfJob:
    """One job of an SWF log. Unknown values are ``-1``, as in the format."""

    job_id: int
    submit: float
    wait: float
    run_time: float
    allocated_procs: int
    requested_procs: int
    requested_time: float
    status: int
    user: int
    group: int
    queue: int
    partition: int

    @property
    def procs(self) -> int:
        """Processors the job asks for: requested if known, else allocated."""
        return self.requested_procs if self.requested_procs > 0 else self.allocated_procs

    @property
    def walltime(self) -> float:
        """The user's estimate the scheduler sees: requested time if known, else run time."""
        return self.requested_time if self.requested_time > 0 else self.run_time


@dataclass(frozen=True, slots=True)
class SwfTrace:
    """A parsed log: its jobs in file order and the header's ``Key: value`` pairs."""

    jobs: tuple[SwfJob, ...]
    header: dict[str, str] = field(default_factory=dict)

    @property
    def max_procs(self) -> int | None:
        """Machine size from the header (``MaxProcs``, else ``MaxNodes``), if stated."""
        for key in ("MaxProcs", "MaxNodes"):
            value = self.header.get(key, "").strip()
            if value.lstrip("-").isdigit() and int(value) > 0:
                return int(value)
        return None

    @property
    def clock_origin(self) -> float:
        """Local wall-clock time (seconds since the epoch) of trace time 0:
        ``UnixStartTime + TimeZone`` from the header, 0 if not stated."""
        total = 0.0
        for key in ("UnixStartTime", "TimeZone"):
            value = self.header.get(key, "").strip()
            if value.lstrip("-").isdigit():
                total += int(value)
        return total


def _number(text: str, lineno: int, index: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpecError(
            f"SWF line {lineno}: field {index + 1} ({SWF_FIELDS[index]}) is not a number: {text!r}",
            hint="SWF fields are whitespace-separated numbers; -1 means unknown",
            line=lineno,
            field=SWF_FIELDS[index],
        ) from None


def _integer(text: str, lineno: int, index: int) -> int:
    value = _number(text, lineno, index)
    if not value.is_integer():
        raise SpecError(
            f"SWF line {lineno}: field {index + 1} ({SWF_FIELDS[index]}) must be an integer, "
            f"got {text!r}",
            line=lineno,
            field=SWF_FIELDS[index],
        )
    return int(value)


def parse_swf_line(text: str, lineno: int) -> SwfJob | None:
    """Parse one line; ``None`` for comments and blank lines. Pure."""
    stripped = text.strip()
    if not stripped or stripped.startswith(";"):
        return None
    parts = stripped.split()
    if len(parts) != len(SWF_FIELDS):
        missing = len(parts) < len(SWF_FIELDS)
        name = SWF_FIELDS[len(parts)] if missing else "(extra)"
        raise SpecError(
            f"SWF line {lineno}: expected {len(SWF_FIELDS)} fields, found {len(parts)}",
            hint="each job line holds the 18 SWF fields; comments start with ';'",
            line=lineno,
            field=name,
        )
    job = SwfJob(
        job_id=_integer(parts[0], lineno, 0),
        submit=_number(parts[1], lineno, 1),
        wait=_number(parts[2], lineno, 2),
        run_time=_number(parts[3], lineno, 3),
        allocated_procs=_integer(parts[4], lineno, 4),
        requested_procs=_integer(parts[7], lineno, 7),
        requested_time=_number(parts[8], lineno, 8),
        status=_integer(parts[10], lineno, 10),
        user=_integer(parts[11], lineno, 11),
        group=_integer(parts[12], lineno, 12),
        queue=_integer(parts[14], lineno, 14),
        partition=_integer(parts[15], lineno, 15),
    )
    # Fields 6, 7, 10, 14, 17 and 18 are not kept but must still be numbers.
    for index in (5, 6, 9, 13, 16, 17):
        _number(parts[index], lineno, index)
    if job.submit < 0:
        raise SpecError(
            f"SWF line {lineno}: field 2 (submit) is negative: {parts[1]!r}",
            line=lineno,
            field="submit",
        )
    return job


def parse_header_line(text: str) -> tuple[str, str] | None:
    """``'; MaxProcs: 100'`` -> ``('MaxProcs', '100')``; ``None`` for other lines. Pure."""
    stripped = text.strip()
    if not stripped.startswith(";"):
        return None
    body = stripped[1:].strip()
    key, sep, value = body.partition(":")
    if not sep or not key or " " in key.strip():
        return None
    return key.strip(), value.strip()


def parse_swf(lines: Iterable[str]) -> SwfTrace:
    """Parse the lines of an SWF log (numbered from 1). Pure."""
    jobs: list[SwfJob] = []
    header: dict[str, str] = {}
    for lineno, text in enumerate(lines, start=1):
        if text.lstrip().startswith(";"):
            pair = parse_header_line(text)
            if pair is not None:
                header.setdefault(pair[0], pair[1])
            continue
        job = parse_swf_line(text, lineno)
        if job is not None:
            jobs.append(job)
    return SwfTrace(jobs=tuple(jobs), header=header)


def _field(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_swf_line(job: SwfJob) -> str:
    """One SWF line for ``job``; the fields ``SwfJob`` does not keep are ``-1``. Pure."""
    values = (
        job.job_id, job.submit, job.wait, job.run_time, job.allocated_procs, -1, -1,
        job.requested_procs, job.requested_time, -1, job.status, job.user, job.group, -1,
        job.queue, job.partition, -1, -1,
    )  # fmt: skip
    return " ".join(_field(v) for v in values)


def format_swf(trace: SwfTrace) -> Iterator[str]:
    """The lines (without newlines) of an SWF file for ``trace``: header, then jobs. Pure."""
    for key, value in trace.header.items():
        yield f"; {key}: {value}"
    for job in trace.jobs:
        yield format_swf_line(job)


def read_swf(path: str | Path) -> SwfTrace:
    """Open ``path`` (gzip if it ends in ``.gz``) and parse it."""
    where = Path(path)
    if not where.is_file():
        raise SpecError(
            f"SWF log not found: {where}",
            hint="give the path of a .swf or .swf.gz file",
            path=str(where),
        )
    try:
        if where.suffix == ".gz":
            with gzip.open(where, "rt", encoding="utf-8", errors="replace") as handle:
                return parse_swf(handle)
        with where.open(encoding="utf-8", errors="replace") as handle:
            return parse_swf(handle)
    except (OSError, EOFError) as exc:
        raise SpecError(
            f"cannot read SWF log {where}: {exc}", path=str(where), hint="is it a valid gzip?"
        ) from None


def write_swf(trace: SwfTrace, path: str | Path) -> None:
    """Write ``trace`` to ``path`` as SWF (gzip if it ends in ``.gz``)."""
    where = Path(path)
    text = "\n".join(format_swf(trace)) + "\n"
    try:
        if where.suffix == ".gz":
            with gzip.open(where, "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            where.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            f"cannot write SWF file {where}: {exc.strerror or exc}",
            hint="check that the directory exists and is writable",
            path=str(where),
        ) from None
