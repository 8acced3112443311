"""ReadyQueue: QoS, deadline and FIFO order; backfill; removal; resource accounting."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hexflow.model import QoS, Resources
from hexflow.scheduler import ReadyQueue
from hexflow.scheduler.queue import SCAN_LIMIT

GiB = 1024**3
ONE = Resources(cpus=1)
PLENTY = Resources(cpus=1000, memory=1000 * GiB, gpus=100)


def test_qos_priority_goes_first() -> None:
    q = ReadyQueue()
    for qos in (QoS.REGULAR, QoS.PREEMPT, QoS.REALTIME, QoS.INTERACTIVE, QoS.URGENT):
        q.push(qos.value, ONE, qos.priority)
    placed, _ = q.place(PLENTY)
    assert placed == ["realtime", "urgent", "interactive", "regular", "preempt"]
    assert len(q) == 0


def test_deadline_orders_within_a_priority_and_none_goes_last() -> None:
    q = ReadyQueue()
    q.push("none", ONE, QoS.REGULAR.priority)
    q.push("late", ONE, QoS.REGULAR.priority, deadline=500.0)
    q.push("soon", ONE, QoS.REGULAR.priority, deadline=100.0)
    q.push("urgent-no-deadline", ONE, QoS.URGENT.priority)
    placed, _ = q.place(PLENTY)
    # priority beats deadline; then earliest deadline; no deadline last
    assert placed == ["urgent-no-deadline", "soon", "late", "none"]


def test_fifo_within_the_same_priority_and_deadline() -> None:
    q = ReadyQueue()
    names = ["t3", "t1", "t4", "t0", "t2"]
    for name in names:
        q.push(name, ONE, QoS.REGULAR.priority, deadline=50.0)
    assert q.place(PLENTY)[0] == names


def test_small_tasks_backfill_around_a_large_one_which_keeps_its_place() -> None:
    q = ReadyQueue()
    q.push("big", Resources(cpus=8), QoS.URGENT.priority)
    q.push("small1", Resources(cpus=1), QoS.REGULAR.priority)
    q.push("small2", Resources(cpus=2), QoS.REGULAR.priority)
    q.push("too-much-memory", Resources(cpus=1, memory=64 * GiB), QoS.REGULAR.priority)
    q.push("needs-gpu", Resources(cpus=1, gpus=1), QoS.REGULAR.priority)
    placed, free = q.place(Resources(cpus=4, memory=16 * GiB))
    assert placed == ["small1", "small2"]
    assert free == Resources(cpus=1, memory=16 * GiB)
    assert "big" in q and "too-much-memory" in q and "needs-gpu" in q
    assert len(q) == 3
    # a later call with room starts the large task first: it kept its place
    q.push("small3", Resources(cpus=1), QoS.REGULAR.priority)
    placed, free = q.place(Resources(cpus=9, memory=16 * GiB))
    assert placed == ["big", "small3"]
    assert free.cpus == 0


def test_free_resources_returned_are_what_is_left() -> None:
    q = ReadyQueue()
    q.push("a", Resources(cpus=1, memory=1 * GiB, gpus=1), 3)
    q.push("b", Resources(cpus=2.5, memory=2 * GiB), 3)
    free = Resources(cpus=4, memory=8 * GiB, gpus=2, nodes=2, walltime=3600)
    placed, left = q.place(free)
    assert placed == ["a", "b"]
    assert left == Resources(cpus=0.5, memory=5 * GiB, gpus=1, nodes=2, walltime=3600)


def test_empty_queue_places_nothing() -> None:
    q = ReadyQueue()
    free = Resources(cpus=3)
    assert q.place(free) == ([], free)


def test_remove_forgets_a_task() -> None:
    q = ReadyQueue()
    for name in ("a", "b", "c"):
        q.push(name, ONE, 3)
    q.remove("b")
    q.remove("never-queued")
    assert len(q) == 2
    assert "b" not in q
    assert q.place(PLENTY)[0] == ["a", "c"]
    assert len(q) == 0
    assert q.place(PLENTY)[0] == []


def test_removed_then_pushed_again_is_placed_once() -> None:
    q = ReadyQueue()
    q.push("a", ONE, QoS.PREEMPT.priority)
    q.push("b", ONE, QoS.REGULAR.priority)
    q.remove("a")
    q.push("a", ONE, QoS.URGENT.priority)  # e.g. cancelled, then resumed
    assert len(q) == 2
    placed, free = q.place(Resources(cpus=4))
    assert placed == ["a", "b"]
    assert free.cpus == 2


def test_pushed_twice_uses_the_latest_entry() -> None:
    q = ReadyQueue()
    q.push("a", ONE, QoS.PREEMPT.priority)
    q.push("b", ONE, QoS.REGULAR.priority)
    q.push("a", ONE, QoS.REALTIME.priority)
    assert len(q) == 2
    assert q.place(PLENTY)[0] == ["a", "b"]


def test_scan_is_bounded_but_keeps_every_task() -> None:
    q = ReadyQueue()
    for i in range(SCAN_LIMIT):
        q.push(f"big{i}", Resources(cpus=100), QoS.URGENT.priority)
    q.push("small", ONE, QoS.REGULAR.priority)
    placed, free = q.place(Resources(cpus=4))
    assert placed == []  # the small task lies past the scan limit this time
    assert free == Resources(cpus=4)
    assert len(q) == SCAN_LIMIT + 1
    for i in range(SCAN_LIMIT // 2):
        q.remove(f"big{i}")
    assert q.place(Resources(cpus=4))[0] == ["small"]
    assert len(q) == SCAN_LIMIT - SCAN_LIMIT // 2


# ---------------------------------------------------------------- properties

# multiples of 0.5 are exact in binary, so sums compare exactly
cpus = st.integers(1, 16).map(lambda n: n / 2)
requests = st.builds(
    Resources,
    cpus=cpus,
    memory=st.integers(0, 16).map(lambda n: n * GiB),
    gpus=st.integers(0, 2),
)
queued = st.lists(
    st.tuples(requests, st.sampled_from(list(QoS)), st.none() | st.integers(0, 5)),
    max_size=SCAN_LIMIT - 1,
)
pools = st.builds(
    Resources,
    cpus=st.integers(0, 32).map(lambda n: n / 2),
    memory=st.integers(0, 32).map(lambda n: n * GiB),
    gpus=st.integers(0, 4),
)


@given(tasks=queued, free=pools)
def test_placed_tasks_never_exceed_the_free_resources(
    tasks: list[tuple[Resources, QoS, int | None]], free: Resources
) -> None:
    q = ReadyQueue()
    for i, (req, qos, deadline) in enumerate(tasks):
        q.push(f"t{i}", req, qos.priority, None if deadline is None else float(deadline))
    placed, left = q.place(free)
    used = [tasks[int(t[1:])][0] for t in placed]
    assert sum(r.cpus for r in used) <= free.cpus
    assert sum(r.memory for r in used) <= free.memory
    assert sum(r.gpus for r in used) <= free.gpus
    assert left.cpus == free.cpus - sum(r.cpus for r in used)
    assert left.memory == free.memory - sum(r.memory for r in used)
    assert left.gpus == free.gpus - sum(r.gpus for r in used)
    assert (left.nodes, left.walltime) == (free.nodes, free.walltime)
    # nothing lost or doubled; what was not placed stays queued
    assert len(set(placed)) == len(placed)
    assert len(q) == len(tasks) - len(placed)
    for i in range(len(tasks)):
        assert (f"t{i}" in q) != (f"t{i}" in placed)

    # placed in queue order: priority, then deadline, then submission
    def queue_order(task: str) -> tuple[int, float, int]:
        seq = int(task[1:])
        _, qos, deadline = tasks[seq]
        return (qos.priority, math.inf if deadline is None else deadline, seq)

    assert placed == sorted(placed, key=queue_order)
    # backfill is work-conserving: no task left behind would fit in what is left
    for i, (req, _, _) in enumerate(tasks):
        if f"t{i}" in q:
            assert not req.fits_in(left), f"t{i} fits in {left} but was not placed"


class QueueAgainstModel(RuleBasedStateMachine):
    """Random push/remove/place sequences against a plain set of queued ids."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = ReadyQueue()
        self.model: set[str] = set()

    @rule(task=st.sampled_from("abcdef"), qos=st.sampled_from(list(QoS)), req=requests)
    def push(self, task: str, qos: QoS, req: Resources) -> None:
        self.queue.push(task, req, qos.priority)
        self.model.add(task)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(sorted(self.model)))
        self.queue.remove(task)
        self.model.discard(task)

    @rule(free=pools)
    def place(self, free: Resources) -> None:
        placed, _ = self.queue.place(free)
        assert len(set(placed)) == len(placed)
        assert set(placed) <= self.model, f"placed {placed} but only {self.model} are queued"
        self.model -= set(placed)

    @invariant()
    def same_members(self) -> None:
        assert len(self.queue) == len(self.model)
        for task in "abcdef":
            assert (task in self.queue) == (task in self.model)


TestQueueAgainstModel = QueueAgainstModel.TestCase
