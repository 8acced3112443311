"""The batch policy (FCFS, EASY, conservative): hand cases and hypothesis properties."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.scheduler.batch import (
    BatchDecisions,
    BatchJob,
    BatchPolicy,
    RunningJob,
    RunningSet,
    earliest_fit,
    schedule,
)

N = 16
POLICIES = list(BatchPolicy)


@st.composite
def situations(draw: st.DrawFn) -> tuple[list[BatchJob], list[RunningJob], int, float]:
    now = float(draw(st.integers(0, 50)))
    running: list[RunningJob] = []
    used = 0
    for i in range(draw(st.integers(0, 6))):
        procs = draw(st.integers(1, N))
        if used + procs > N:
            break
        used += procs
        # expected ends may lie in the past: a job that overran its estimate
        running.append(RunningJob(1000 + i, procs, float(draw(st.integers(0, 200)))))
    queue = [
        BatchJob(i, draw(st.integers(1, N)), float(draw(st.integers(0, 200))))
        for i in range(draw(st.integers(0, 12)))
    ]
    return queue, running, N - used, now


def _procs(queue: list[BatchJob], ids: tuple[int, ...]) -> int:
    by_id = {j.job_id: j for j in queue}
    return sum(by_id[i].procs for i in ids)


@settings(max_examples=300, deadline=None)
@given(situations(), st.sampled_from(POLICIES))
def test_never_over_allocates_and_is_deterministic(
    case: tuple[list[BatchJob], list[RunningJob], int, float], policy: BatchPolicy
) -> None:
    queue, running, free, now = case
    first = schedule(policy, queue, running, free, now)
    assert _procs(queue, first.starts) <= free
    assert len(set(first.starts)) == len(first.starts)
    assert schedule(policy, list(queue), list(running), free, now) == first
    assert schedule(policy, iter(queue), iter(running), free, now) == first


@settings(max_examples=300, deadline=None)
@given(situations(), st.sampled_from(POLICIES))
def test_a_running_set_gives_the_same_decisions(
    case: tuple[list[BatchJob], list[RunningJob], int, float], policy: BatchPolicy
) -> None:
    queue, running, free, now = case
    kept = RunningSet(reversed(running))
    assert len(kept) == len(running)
    assert schedule(policy, queue, kept, free, now) == schedule(policy, queue, running, free, now)
    for procs in range(1, N + 1):
        assert earliest_fit(procs, kept, free, now) == earliest_fit(procs, running, free, now)
    if running:
        gone = kept.remove(running[0].job_id)
        assert gone == running[0]
        rest = running[1:]
        assert schedule(policy, queue, kept, free, now) == schedule(policy, queue, rest, free, now)


def test_running_set_rejects_a_job_twice() -> None:
    kept = RunningSet([RunningJob(1, 2, 10.0)])
    try:
        kept.add(RunningJob(1, 3, 5.0))
    except ValueError as exc:
        assert "already running" in str(exc)
    else:
        raise AssertionError("a job id added twice must be refused")
    assert [j.job_id for j in kept] == [1]


@settings(max_examples=300, deadline=None)
@given(situations())
def test_fcfs_starts_a_prefix(case: tuple[list[BatchJob], list[RunningJob], int, float]) -> None:
    queue, running, free, now = case
    starts = schedule(BatchPolicy.FCFS, queue, running, free, now).starts
    assert list(starts) == [j.job_id for j in queue[: len(starts)]]


@settings(max_examples=500, deadline=None)
@given(situations())
def test_easy_never_delays_the_head(
    case: tuple[list[BatchJob], list[RunningJob], int, float],
) -> None:
    queue, running, free, now = case
    decided = schedule(BatchPolicy.EASY, queue, running, free, now)
    # Without backfill: start the FCFS prefix, then the head's earliest start.
    prefix = schedule(BatchPolicy.FCFS, queue, running, free, now).starts
    assert decided.starts[: len(prefix)] == prefix
    if len(prefix) == len(queue):
        assert decided.starts == prefix
        return
    head = queue[len(prefix)]
    by_id = {j.job_id: j for j in queue}

    def holding(ids: tuple[int, ...]) -> list[RunningJob]:
        return running + [RunningJob(i, by_id[i].procs, now + by_id[i].walltime) for i in ids]

    without = earliest_fit(head.procs, holding(prefix), free - _procs(queue, prefix), now)
    with_backfill = earliest_fit(
        head.procs, holding(decided.starts), free - _procs(queue, decided.starts), now
    )
    assert with_backfill == without
    assert [r.job_id for r in decided.reservations] == [head.job_id]
    assert decided.reservations[0].start == without
    assert head.job_id not in decided.starts


@settings(max_examples=300, deadline=None)
@given(situations())
def test_conservative_reservations_fit_together(
    case: tuple[list[BatchJob], list[RunningJob], int, float],
) -> None:
    queue, running, free, now = case
    decided = schedule(BatchPolicy.CONSERVATIVE, queue, running, free, now)
    by_id = {j.job_id: j for j in queue}
    # a running job holds its processors at least through now
    spans = [(now, max(r.expected_end, math.nextafter(now, math.inf)), r.procs) for r in running]
    spans += [(now, now + by_id[i].walltime, by_id[i].procs) for i in decided.starts]
    spans += [
        (r.start, r.start + by_id[r.job_id].walltime, by_id[r.job_id].procs)
        for r in decided.reservations
    ]
    for t in {s for s, _, _ in spans} | {now}:
        assert sum(p for s, e, p in spans if s <= t < e) <= N
    # every job that could start now on an empty-queue basis and delays no one is started:
    # at least, a job that fits the free processors when nothing is reserved starts
    if queue and queue[0].procs <= free:
        assert queue[0].job_id in decided.starts


def test_easy_hand_case() -> None:
    # 10 processors; a 6-proc job runs until 100; the head needs 8 -> reservation at 100,
    # extra = 2 processors at that time.
    running = [RunningJob(1, 6, 100.0)]
    queue = [
        BatchJob(2, 8, 100.0),  # head
        BatchJob(3, 4, 300.0),  # fits now but ends after 100 and needs more than the extra
        BatchJob(4, 2, 250.0),  # ends after 100 but fits in the extra 2
        BatchJob(5, 2, 90.0),  # ends before 100
    ]
    decided = schedule(BatchPolicy.EASY, queue, running, 4, 3.0)
    assert decided == BatchDecisions((4, 5), decided.reservations)
    assert decided.reservations[0].start == 100.0
    assert schedule(BatchPolicy.FCFS, queue, running, 4, 3.0).starts == ()


def test_conservative_protects_every_reservation() -> None:
    running = [RunningJob(1, 6, 100.0)]
    queue = [
        BatchJob(2, 8, 100.0),  # reserved at 100..200
        BatchJob(3, 9, 300.0),  # reserved at 200..500
        BatchJob(4, 2, 250.0),  # EASY would backfill it; here it would delay job 3
        BatchJob(5, 4, 90.0),  # ends before 100: starts now
    ]
    decided = schedule(BatchPolicy.CONSERVATIVE, queue, running, 4, 3.0)
    assert decided.starts == (5,)
    assert [(r.job_id, r.start) for r in decided.reservations] == [
        (2, 100.0),
        (3, 200.0),
        (4, 500.0),
    ]
    easy = schedule(BatchPolicy.EASY, queue, running, 4, 3.0)
    assert easy.starts == (4,)


def test_overran_job_counts_as_ending_now() -> None:
    running = [RunningJob(1, 8, 5.0)]  # expected at 5, still running at 50
    queue = [BatchJob(2, 10, 10.0), BatchJob(3, 2, 100.0)]
    decided = schedule(BatchPolicy.EASY, queue, running, 2, 50.0)
    assert 50.0 < decided.reservations[0].start < 50.001  # the instant after now
    assert decided.starts == ()  # job 3 would hold the head's processors
