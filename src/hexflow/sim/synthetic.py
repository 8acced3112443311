"""Seeded synthetic batch workloads shaped like real HPC logs, as SWF jobs.

Pure: ``synthesize(config)`` draws every value from one ``random.Random(config.seed)``, so
the same config gives the same trace, byte for byte once formatted. The model (after
Lublin & Feitelson 2003, simplified): sizes mostly small, log-uniform in two stages and
often a power of two; lognormal run times; a daily and weekly arrival cycle; user
estimates that overestimate and are rounded up to usual limits; the arrival rate set so the
offered load (processor-seconds asked / machine capacity over the span) is ``load``.
Trace time 0 is a Monday 00:00 (``UnixStartTime`` in the header, time zone UTC).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hexflow.errors import SpecError
from hexflow.scheduler.swf import SwfJob, SwfTrace

# 2024-01-01 00:00 UTC, a Monday: the plans of scheduler.elastic see trace time 0 there.
SYNTH_EPOCH = 1_704_067_200
DAY = 86_400.0
# Relative arrival rate per hour of the day (quiet at night, busy in working hours),
# normalised below to a mean of 1.
_HOURLY = (
    0.35, 0.3, 0.25, 0.22, 0.2, 0.22, 0.3, 0.5, 0.9, 1.35, 1.6, 1.65,
    1.45, 1.6, 1.7, 1.65, 1.5, 1.3, 1.05, 0.85, 0.7, 0.6, 0.5, 0.42,
)  # fmt: skip
_WEEKEND = 0.5  # weekend days see half the arrivals of a weekday hour
# Walltime limits users pick (seconds): an estimate is rounded up to the next one.
_LIMITS = (
    300, 600, 900, 1800, 3600, 7200, 4 * 3600, 6 * 3600, 8 * 3600,
    12 * 3600, 24 * 3600, 36 * 3600, 48 * 3600,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SynthConfig:
    """What to generate. ``load``: offered load on the machine (1.0 = exactly full).

    ``max_job_cores``: the largest job (default: an eighth of the machine);
    ``interactive``: share of jobs that are short, small interactive ones (SWF queue 0;
    the rest go to queue 1, batch); ``max_walltime``: the machine's limit in seconds.
    """

    jobs: int
    cores: int
    seed: int = 0
    load: float = 0.85
    max_job_cores: int | None = None
    interactive: float = 0.15
    max_walltime: float = 48 * 3600.0

    def validate(self) -> None:
        def bad(name: str, message: str) -> SpecError:
            return SpecError(f"synthetic trace: {name} {message}", field=name)

        if self.jobs < 1:
            raise bad("jobs", f"must be at least 1, got {self.jobs}")
        if self.cores < 1:
            raise bad("cores", f"must be at least 1, got {self.cores}")
        if not (0 < self.load <= 10 and math.isfinite(self.load)):
            raise bad("load", f"must be in (0, 10], got {self.load}")
        if self.max_job_cores is not None and not 1 <= self.max_job_cores <= self.cores:
            raise bad("max_job_cores", f"must be in [1, cores={self.cores}]")
        if not 0 <= self.interactive <= 1:
            raise bad("interactive", f"must be a share in [0, 1], got {self.interactive}")
        if not self.max_walltime >= 300:
            raise bad("max_walltime", f"must be at least 300 s, got {self.max_walltime}")


def _size(rng: random.Random, largest: int) -> int:
    """Processors: 20% serial; else log2 uniform in two stages (80% in the lower 55% of
    the range); three in four rounded to a power of two."""
    if largest == 1 or rng.random() < 0.2:
        return 1
    top = math.log2(largest)
    low = 0.55 * top
    exponent = rng.uniform(0.0, low) if rng.random() < 0.8 else rng.uniform(low, top)
    if rng.random() < 0.75:
        exponent = round(exponent)
    return max(1, min(largest, int(round(2.0**exponent))))


def _estimate(rng: random.Random, run: float, limit: float) -> float:
    """The user's walltime request: the run time times a lognormal overestimate factor,
    rounded up to a usual limit, capped at the machine's."""
    wanted = run * math.exp(abs(rng.gauss(0.6, 0.9)))
    for value in _LIMITS:
        if value >= wanted:
            return float(min(value, limit))
    return float(limit)


# Scales that make the mean rate over a week 1.
_WEEKDAY = 7.0 / (5.0 + 2.0 * _WEEKEND)
_PER_HOUR = tuple(h * 24.0 / sum(_HOURLY) for h in _HOURLY)
_PEAK = _WEEKDAY * max(_PER_HOUR)


def _rate(t: float) -> float:
    """Relative arrival rate at trace time ``t`` (time 0 is Monday 00:00)."""
    weekend = int(t // DAY) % 7 >= 5
    return _WEEKDAY * (_WEEKEND if weekend else 1.0) * _PER_HOUR[int(t % DAY // 3600)]


def synthesize(config: SynthConfig) -> SwfTrace:
    """A trace of ``config.jobs`` jobs for a machine of ``config.cores`` processors."""
    config.validate()
    rng = random.Random(config.seed)
    largest = config.max_job_cores or max(1, config.cores // 8)
    small = max(1, min(largest, 64, config.cores // 64 or 1))
    users = max(8, min(config.jobs, 40 + config.jobs // 2000))
    user_ids = range(1, users + 1)
    cumulative: list[float] = []  # Zipf-like: a few users submit most jobs
    for rank in user_ids:
        cumulative.append((cumulative[-1] if cumulative else 0.0) + 1.0 / rank**1.1)
    groups = max(1, users // 8)
    limit = config.max_walltime

    # Shapes first, so the work is known and the arrival rate can give the load.
    shapes: list[tuple[int, float, float, int, int]] = []  # procs, run, asked, status, queue
    work = 0.0
    for _ in range(config.jobs):
        if rng.random() < config.interactive:
            procs = _size(rng, small)
            run = min(rng.lognormvariate(math.log(600), 1.0), 4 * 3600.0)
            queue = 0
            asked = _estimate(rng, run, min(limit, 4 * 3600.0))
        else:
            procs = _size(rng, largest)
            # bigger jobs run a little longer, as in most logs
            median = 1200.0 * (1.0 + 0.15 * math.log2(procs))
            run = min(rng.lognormvariate(math.log(median), 1.7), limit)
            queue = 1
            asked = _estimate(rng, run, limit)
        run = max(1.0, float(round(run)))
        status = 1
        if run >= asked or rng.random() < 0.06:  # killed at its limit
            run, status = asked, 0
        shapes.append((procs, run, asked, status, queue))
        work += procs * run

    # Arrivals: a Poisson process with the daily/weekly rate, conditioned on ``jobs``
    # arrivals over the span that gives the load; that is, i.i.d. times drawn with density
    # proportional to the rate (by rejection against the peak), then sorted.
    span = work / (config.cores * config.load)
    times: list[float] = []
    while len(times) < config.jobs:
        t = rng.uniform(0.0, span)
        if rng.random() * _PEAK <= _rate(t):
            times.append(t)
    times.sort()
    jobs: list[SwfJob] = []
    for index, ((procs, run, asked, status, queue), t) in enumerate(
        zip(shapes, times, strict=True)
    ):
        user = rng.choices(user_ids, cum_weights=cumulative)[0]
        jobs.append(
            SwfJob(
                job_id=index + 1,
                submit=float(math.floor(t)),
                wait=-1.0,
                run_time=run,
                allocated_procs=procs,
                requested_procs=procs,
                requested_time=asked,
                status=status,
                user=user,
                group=1 + (user - 1) % groups,
                queue=queue,
                partition=1,
            )
        )
    header = {
        "Version": "2.2",
        "Computer": f"synthetic {config.cores}-processor machine",
        "Installation": "hexflow sim synth",
        "Note": (
            f"synthetic trace: seed={config.seed} jobs={config.jobs} load={config.load} "
            f"max_job_cores={largest} interactive={config.interactive}"
        ),
        "UnixStartTime": str(SYNTH_EPOCH),
        "TimeZone": "0",
        "TimeZoneString": "UTC",
        "MaxJobs": str(config.jobs),
        "MaxRecords": str(config.jobs),
        "MaxNodes": str(config.cores),
        "MaxProcs": str(config.cores),
        "MaxRuntime": str(int(limit)),
        "MaxQueues": "2",
        "Queues": "queue 0 is interactive, queue 1 is batch",
    }
    return SwfTrace(jobs=tuple(jobs), header=header)


__all__ = ["SYNTH_EPOCH", "SynthConfig", "synthesize"]
