"""Discrete-event replay of a batch log through a scheduler policy, in virtual time.

Events are arrivals (at submit time) and completions (at start + actual run time). All
events at one instant are applied before the policy runs once for that instant; completions
sit in a heap, arrivals are consumed in submit order and running jobs stay in a
``RunningSet`` (expected-end order), so a replay is O(events log events) plus the policy's
own work. Jobs larger than the machine are rejected and counted; jobs with no processors or
a negative run time are skipped and counted. Rows and figures: ``sim.metrics``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from hexflow.errors import SpecError
from hexflow.scheduler.batch import BatchJob, BatchPolicy, RunningJob, RunningSet, schedule
from hexflow.scheduler.swf import SwfJob
from hexflow.sim.metrics import BOUNDED_SLOWDOWN_TAU, JobRow, ReplayResult, summarize


def replay(
    jobs: Iterable[SwfJob], policy: BatchPolicy | str, nodes: int, tau: float = BOUNDED_SLOWDOWN_TAU
) -> ReplayResult:
    """Replay ``jobs`` on a machine of ``nodes`` processors under ``policy``."""
    try:
        chosen = BatchPolicy(policy)
    except ValueError:
        raise SpecError(
            f"unknown scheduling policy {policy!r}",
            hint="use one of: " + ", ".join(p.value for p in BatchPolicy),
            field="policy",
        ) from None
    if nodes <= 0:
        raise SpecError(f"the machine needs at least one processor, got {nodes}", field="nodes")

    accepted: list[SwfJob] = []
    rejected = skipped = 0
    for job in jobs:
        if job.procs <= 0 or job.run_time < 0:
            skipped += 1
        elif job.procs > nodes:
            rejected += 1
        else:
            accepted.append(job)
    # Stable on submit time, so ties keep file order (the order a real queue would see).
    accepted.sort(key=lambda j: j.submit)
    by_id = {j.job_id: j for j in accepted}
    if len(by_id) != len(accepted):
        raise SpecError("the log holds duplicate job ids", hint="job ids must be unique")

    queue: dict[int, BatchJob] = {}  # insertion-ordered: the FCFS queue
    running = RunningSet()  # kept in expected-end order across passes
    completions: list[tuple[float, int]] = []  # (end, job id)
    starts: dict[int, float] = {}
    free = nodes
    nxt = 0
    total = len(accepted)
    while nxt < total or completions:
        now = accepted[nxt].submit if nxt < total else completions[0][0]
        if completions and completions[0][0] < now:
            now = completions[0][0]
        while completions and completions[0][0] == now:
            _, done = heapq.heappop(completions)
            free += running.remove(done).procs
        while nxt < total and accepted[nxt].submit == now:
            job = accepted[nxt]
            queue[job.job_id] = BatchJob(job.job_id, job.procs, job.walltime)
            nxt += 1
        if not queue:
            continue
        decided = schedule(chosen, queue.values(), running, free, now)
        for job_id in decided.starts:
            queued = queue.pop(job_id)
            free -= queued.procs
            running.add(RunningJob(job_id, queued.procs, now + queued.walltime))
            starts[job_id] = now
            heapq.heappush(completions, (now + by_id[job_id].run_time, job_id))
        if free < 0:  # a policy bug, never a user error
            raise AssertionError(f"over-allocation at t={now}: free={free}")
    if queue:
        raise AssertionError(f"{len(queue)} jobs never started")
    return _result(chosen, nodes, accepted, starts, rejected, skipped, tau)


def _result(
    policy: BatchPolicy,
    nodes: int,
    accepted: list[SwfJob],
    starts: dict[int, float],
    rejected: int,
    skipped: int,
    tau: float,
) -> ReplayResult:
    rows = [
        JobRow(j.job_id, j.submit, starts[j.job_id], starts[j.job_id] + j.run_time, j.procs)
        for j in accepted
    ]
    runs = [j.run_time for j in accepted]
    return summarize(policy.value, nodes, rows, runs, rejected, skipped, tau)


__all__ = ["BOUNDED_SLOWDOWN_TAU", "JobRow", "ReplayResult", "replay"]
