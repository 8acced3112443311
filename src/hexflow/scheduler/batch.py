"""Batch-scheduling policy over one homogeneous machine: FCFS, EASY and conservative backfill.

Pure: the input is the ordered queue, the running jobs with their expected ends (start +
requested time), the free processors and ``now``; the output is which jobs to start now and
the reservations made. No clock, no I/O; the same input gives the same decisions. A running
job whose expected end has passed is taken to end at the instant after ``now`` (it may
finish at any moment, but its processors are not free yet). The running jobs may come as a
``RunningSet``, kept in expected-end order across passes by a replay: same decisions, no
sort per pass.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


def _after(end: float, start: float) -> float:
    """``end``, but at least the instant after ``start``: a job holds processors at start."""
    return end if end > start else math.nextafter(start, math.inf)


def _end(job: RunningJob, now: float) -> float:
    return _after(job.expected_end, now)


class BatchPolicy(StrEnum):
    FCFS = "fcfs"
    EASY = "easy"
    CONSERVATIVE = "conservative"


@dataclass(frozen=True, slots=True)
class BatchJob:
    """A queued job: processors asked and the user's walltime estimate (seconds)."""

    job_id: int
    procs: int
    walltime: float


@dataclass(frozen=True, slots=True)
class RunningJob:
    job_id: int
    procs: int
    expected_end: float


class RunningSet:
    """Running jobs kept in (expected end, job id) order as they come and go.

    A caller that replays many passes (``hexflow.sim.replay``) keeps one of these instead
    of a plain list, so a pass reads the ends in order without sorting them again.
    ``schedule`` accepts either; the decisions are the same.
    """

    def __init__(self, jobs: Iterable[RunningJob] = ()) -> None:
        self._jobs: dict[int, RunningJob] = {}
        self._ends: list[tuple[float, int, int]] = []  # (expected end, job id, procs)
        for job in jobs:
            self.add(job)

    def add(self, job: RunningJob) -> None:
        if job.job_id in self._jobs:
            raise ValueError(f"job {job.job_id} is already running")
        self._jobs[job.job_id] = job
        bisect.insort(self._ends, (job.expected_end, job.job_id, job.procs))

    def remove(self, job_id: int) -> RunningJob:
        job = self._jobs.pop(job_id)
        entry = (job.expected_end, job.job_id, job.procs)
        del self._ends[bisect.bisect_left(self._ends, entry)]
        return job

    def __iter__(self) -> Iterator[RunningJob]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def by_end(self, now: float) -> Iterator[tuple[float, int, int]]:
        """(end, job id, procs) in (end, job id) order, where ``end`` is ``_end(job, now)``:
        the jobs that overran their estimate end the instant after ``now``, by job id."""
        ends = self._ends
        overran = bisect.bisect_right(ends, (now, math.inf))
        if overran:
            after = math.nextafter(now, math.inf)
            for _, job_id, procs in sorted(ends[:overran], key=lambda e: e[1]):
                yield after, job_id, procs
        yield from itertools.islice(ends, overran, None) if overran else ends


def _by_end(running: Iterable[RunningJob], now: float) -> Iterator[tuple[float, int, int]]:
    """(end, job id, procs) of ``running`` in (``_end``, job id) order."""
    if isinstance(running, RunningSet):
        return running.by_end(now)
    after = math.nextafter(now, math.inf)
    # ``_end`` inlined: on a replay this list sees every running job on every blocked pass.
    holding = [
        (r.expected_end if r.expected_end > now else after, r.job_id, r.procs) for r in running
    ]
    holding.sort()
    return iter(holding)


@dataclass(frozen=True, slots=True)
class Reservation:
    job_id: int
    start: float


@dataclass(frozen=True, slots=True)
class BatchDecisions:
    """Jobs to start now, in queue order, and the reservations the policy made."""

    starts: tuple[int, ...]
    reservations: tuple[Reservation, ...] = ()


def schedule(
    policy: BatchPolicy,
    queue: Iterable[BatchJob],
    running: Iterable[RunningJob],
    free: int,
    now: float,
) -> BatchDecisions:
    """Decide which queued jobs start at ``now`` under ``policy``."""
    if policy is BatchPolicy.FCFS:
        return _fcfs(queue, free)
    if policy is BatchPolicy.EASY:
        return _easy(queue, running, free, now)
    return _conservative(queue, running, free, now)


def _fcfs(queue: Iterable[BatchJob], free: int) -> BatchDecisions:
    starts: list[int] = []
    for job in queue:
        if job.procs > free:
            break
        starts.append(job.job_id)
        free -= job.procs
    return BatchDecisions(tuple(starts))


def earliest_fit(procs: int, running: Iterable[RunningJob], free: int, now: float) -> float:
    """Earliest time ``procs`` processors are free if no other job starts. ``inf`` if never."""
    if procs <= free:
        return now
    avail = free
    for end, _, held in _by_end(running, now):
        avail += held
        if avail >= procs:
            return end
    return float("inf")


def _easy(
    queue: Iterable[BatchJob], running: Iterable[RunningJob], free: int, now: float
) -> BatchDecisions:
    starts: list[int] = []
    # (expected end, job id, procs) of the jobs this pass starts before the head
    started: list[tuple[float, int, int]] = []
    jobs = iter(queue)
    head: BatchJob | None = None
    for job in jobs:
        if job.procs > free:
            head = job
            break
        starts.append(job.job_id)
        started.append((_after(now + job.walltime, now), job.job_id, job.procs))
        free -= job.procs
    if head is None:
        return BatchDecisions(tuple(starts))
    # Shadow time: when the head fits as running jobs end; extra: processors left over at
    # the shadow time once the head has its share. A backfilled job must end by the shadow
    # time or use only extra processors, so the head's reservation never moves.
    shadow = float("inf")
    avail = free
    ends = _by_end(running, now)
    if started:
        ends = heapq.merge(ends, sorted(started))
    for end, _, procs in ends:
        avail += procs
        if avail >= head.procs:
            shadow = end
            break
    extra = avail - head.procs
    reservation = Reservation(head.job_id, shadow)
    if free == 0:
        return BatchDecisions(tuple(starts), (reservation,))
    for job in jobs:
        if job.procs > free:
            continue
        if now + job.walltime <= shadow:
            starts.append(job.job_id)
            free -= job.procs
        elif job.procs <= extra:
            starts.append(job.job_id)
            free -= job.procs
            extra -= job.procs
        else:
            continue
        if free == 0:
            break
    return BatchDecisions(tuple(starts), (reservation,))


class _Profile:
    """Free processors as a step function of time: ``free[i]`` holds on [times[i], times[i+1])."""

    def __init__(self, now: float, free: int, running: Iterable[RunningJob]) -> None:
        releases: dict[float, int] = {}
        for r in running:
            end = _end(r, now)
            releases[end] = releases.get(end, 0) + r.procs
        self.times: list[float] = [now]
        self.free: list[int] = [free]
        for end in sorted(releases):
            self.times.append(end)
            self.free.append(self.free[-1] + releases[end])

    def find(self, procs: int, duration: float) -> float:
        """Earliest start of a ``procs`` x ``duration`` rectangle that fits."""
        times, free = self.times, self.free
        n = len(times)
        i = 0
        while i < n:
            if free[i] < procs:
                i += 1
                continue
            start = times[i]
            end = _after(start + duration, start)
            j = i + 1
            while j < n and times[j] < end and free[j] >= procs:
                j += 1
            if j >= n or times[j] >= end:
                return start
            i = j + 1
        return float("inf")

    def _split(self, t: float) -> int:
        k = bisect.bisect_left(self.times, t)
        if k < len(self.times) and self.times[k] == t:
            return k
        self.times.insert(k, t)
        self.free.insert(k, self.free[k - 1])
        return k

    def reserve(self, start: float, duration: float, procs: int) -> None:
        first = self._split(start)
        end = _after(start + duration, start)
        last = self._split(end) if end != float("inf") else len(self.times)
        for k in range(first, last):
            self.free[k] -= procs


def _conservative(
    queue: Iterable[BatchJob], running: Iterable[RunningJob], free: int, now: float
) -> BatchDecisions:
    profile = _Profile(now, free, running)
    starts: list[int] = []
    reservations: list[Reservation] = []
    for job in queue:
        if profile.free[0] == 0:
            # Nothing else can start now: later reservations would not change a decision,
            # so they are not computed (the reservations returned stop here).
            break
        at = profile.find(job.procs, job.walltime)
        if at == float("inf"):
            continue  # larger than the machine: never fits; the caller rejects such jobs
        profile.reserve(at, job.walltime, job.procs)
        if at == now:
            starts.append(job.job_id)
        else:
            reservations.append(Reservation(job.job_id, at))
    return BatchDecisions(tuple(starts), tuple(reservations))


__all__ = [
    "BatchDecisions",
    "BatchJob",
    "BatchPolicy",
    "Reservation",
    "RunningJob",
    "RunningSet",
    "earliest_fit",
    "schedule",
]
