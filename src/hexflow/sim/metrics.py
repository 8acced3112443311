"""What a replay reports: one row per job and the summary figures computed from the rows.

Both replays (the one-machine batch policies and the facility policy) produce ``JobRow``s
and summarise them with ``summarize``, so their figures mean the same thing: mean wait,
mean bounded slowdown ``max((wait + run) / max(run, tau), 1)``, utilization
(processor-seconds used / (processors x makespan)) and makespan (first submit to last end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BOUNDED_SLOWDOWN_TAU = 10.0


@dataclass(frozen=True, slots=True)
class JobRow:
    """One replayed job: when it arrived, started and ended, and on how many processors.

    ``pool`` and ``nodes`` are set by the facility replay (the pool and the nodes it ran
    on); the batch replay has one anonymous machine and leaves them empty.
    """

    job_id: int
    submit: float
    start: float
    end: float
    procs: int
    pool: str = ""
    nodes: tuple[str, ...] = ()

    @property
    def wait(self) -> float:
        return self.start - self.submit

    @property
    def run(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ReplayResult:
    policy: str
    nodes: int  # processors of the machine
    jobs: tuple[JobRow, ...]
    rejected: int
    skipped: int
    mean_wait: float
    mean_bounded_slowdown: float
    utilization: float
    makespan: float

    def metrics(self) -> dict[str, float | int | str]:
        """The summary figures, JSON-ready."""
        return {
            "policy": self.policy,
            "nodes": self.nodes,
            "jobs": len(self.jobs),
            "rejected": self.rejected,
            "skipped": self.skipped,
            "mean_wait_s": round(self.mean_wait, 3),
            "mean_bounded_slowdown": round(self.mean_bounded_slowdown, 4),
            "utilization": round(self.utilization, 4),
            "makespan_s": round(self.makespan, 3),
        }


def summarize(
    policy: str,
    processors: int,
    rows: Sequence[JobRow],
    runs: Sequence[float],
    rejected: int,
    skipped: int,
    tau: float = BOUNDED_SLOWDOWN_TAU,
) -> ReplayResult:
    """The result of a replay whose jobs ran as ``rows``; ``runs[i]`` is row i's run time
    as the log gives it (kept apart from ``end - start`` so no rounding creeps in)."""
    if not rows:
        return ReplayResult(policy, processors, (), rejected, skipped, 0.0, 0.0, 0.0, 0.0)
    n = len(rows)
    mean_wait = sum(r.wait for r in rows) / n
    slowdown = 0.0
    work = 0.0
    for row, run in zip(rows, runs, strict=True):
        slowdown += max((row.wait + run) / max(run, tau), 1.0)
        work += run * row.procs
    first = min(r.submit for r in rows)
    last = max(r.end for r in rows)
    makespan = last - first
    utilization = work / (processors * makespan) if makespan > 0 else 0.0
    return ReplayResult(
        policy=policy,
        nodes=processors,
        jobs=tuple(rows),
        rejected=rejected,
        skipped=skipped,
        mean_wait=mean_wait,
        mean_bounded_slowdown=slowdown / n,
        utilization=utilization,
        makespan=makespan,
    )


__all__ = ["BOUNDED_SLOWDOWN_TAU", "JobRow", "ReplayResult", "summarize"]
