"""Reservations: the earliest time a blocked task (or a whole gang) fits, and on which nodes.

``Planner.earliest`` walks the ends of running work (and of work started in this pass) in time
order, tracking what each node will have free; the first time at which every member fits
on specific nodes (first fit in cluster order, nodes that do not leave before the
member's walltime ends) is the reservation. Gang members share one start time. With
conservative backfilling, ``Bookings`` holds the reservations already made in the pass;
a node with bookings fits a request over [start, end) only if, at every instant, what
runs there, what is booked there and the request all fit. Pure: no clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from hexflow.scheduler.capacity import Capacity, Ending
from hexflow.scheduler.cluster import FreeNodes
from hexflow.scheduler.decisions import PendingTask, Shape

# (end, node, cpus, gpus, memory): work started in this pass
Started = tuple[float, int, float, int, int]
# (start, end, cpus, gpus, memory, whole node): one booking on one node
Booking = tuple[float, float, float, int, int, bool]
# what stays free on a reserved node once the reservation has its share (None: whole)
Extra = tuple[float, int, int] | None


@dataclass(frozen=True, slots=True)
class Reservation:
    at: float
    nodes: list[list[int]]  # per member, in the members' order
    extras: dict[int, Extra]  # reserved node -> what stays free there at ``at``


class Bookings:
    """The pass's reservations per node, for conservative backfilling."""

    def __init__(self, table: FreeNodes, capacity: Capacity, now: float) -> None:
        self.table, self.capacity, self.now = table, capacity, now
        self.on_node: dict[int, list[Booking]] = {}
        self.ends: list[float] = []  # sorted: when some booking ends (a check point)
        self.started_on: dict[int, list[tuple[float, float, int, int]]] = {}
        self._base: dict[int, list[tuple[float, float, int, int]]] = {}

    def book(self, i: int, start: float, end: float, shape: Shape) -> None:
        cpus, gpus, memory, _, whole = shape
        t = self.table
        if whole:
            cpus, gpus, memory = t.cap_cpus[i], t.cap_gpus[i], t.cap_memory[i]
        self.on_node.setdefault(i, []).append((start, end, cpus, gpus, memory, whole))
        bisect.insort(self.ends, end)

    def started(self, i: int, end: float, cpus: float, gpus: int, memory: int) -> None:
        self.started_on.setdefault(i, []).append((end, cpus, gpus, memory))
        self._base.pop(i, None)

    def unstarted(self, i: int) -> None:
        self.started_on[i].pop()
        self._base.pop(i, None)

    def fits(
        self, i: int, start: float, end: float, shape: Shape, extra: Sequence[Booking] = ()
    ) -> bool:
        """Whether one node's share of ``shape`` fits on node ``i`` over [start, end)."""
        return self.conflict(i, start, end, shape, extra) is None

    def conflict(
        self, i: int, start: float, end: float, shape: Shape, extra: Sequence[Booking] = ()
    ) -> float | None:
        """None if ``shape`` fits on node ``i`` over [start, end); else a time before which
        no window of that length fits there unless running work on the node ends first
        (bookings do not move within a pass)."""
        cpus, gpus, memory, _, whole = shape
        booked = [b for b in (*self.on_node.get(i, ()), *extra) if b[0] < end and b[1] > start]
        after_start = math.nextafter(start, math.inf)
        if whole:
            if booked:
                return max(b[1] for b in booked)
            return None if self._base_at(i, start)[3] == 0 else after_start
        if any(b[5] for b in booked):
            return max(b[1] for b in booked if b[5])
        points = [start, *sorted({b[0] for b in booked if b[0] > start})]
        for at in points:
            fc, fg, fm, _ = self._base_at(i, at)
            for b in booked:
                if b[0] <= at < b[1]:
                    fc, fg, fm = fc - b[2], fg - b[3], fm - b[4]
            if cpus > fc or gpus > fg or memory > fm:
                if at > start:  # too full at ``at``: no window holding it fits
                    return math.nextafter(at, math.inf)
                # Too full at the start: until a booking there ends (or running work
                # ends, which the caller watches for).
                return min((b[1] for b in booked if b[0] <= at), default=after_start)
        return None

    def _base_at(self, i: int, at: float) -> tuple[float, int, int, int]:
        """(cpus, gpus, memory, holders) free on node ``i`` at ``at`` without bookings."""
        t = self.table
        ends = self._base.get(i)
        if ends is None:
            after_now = math.nextafter(self.now, math.inf)
            ends = []
            for r, s in self.capacity.held_on(i):
                e = r.expected_end if r.expected_end > self.now else after_now
                if s.exclusive:
                    ends.append((e, t.cap_cpus[i], t.cap_gpus[i], t.cap_memory[i]))
                else:
                    ends.append((e, s.cpus, s.gpus, s.memory))
            ends.extend(self.started_on.get(i, ()))
            ends.sort(key=lambda e: e[0])
            self._base[i] = ends
        fc, fg, fm, holders = t.free_cpus[i], t.free_gpus[i], t.free_memory[i], t.holders[i]
        for e, c, g, m in ends:
            if e > at:
                break
            fc = min(fc + c, t.cap_cpus[i])
            fg = min(fg + g, t.cap_gpus[i])
            fm = min(fm + m, t.cap_memory[i])
            holders -= 1
        return fc, fg, fm, holders


class Planner:
    """Finds reservations for one pass: what runs, what the pass started, its bookings."""

    def __init__(
        self,
        table: FreeNodes,
        endings: list[Ending],
        started: list[Started],
        now: float,
        bookings: Bookings | None = None,
    ) -> None:
        self.table, self.endings, self.started = table, endings, started
        self.now, self.bookings = now, bookings
        self.mortal = [i for i, at in enumerate(table.leaves_at) if at < math.inf]

    def earliest(
        self, candidates: Iterable[int], members: Sequence[PendingTask]
    ) -> Reservation | None:
        """The earliest time after now all ``members`` fit at once, and where; or None.

        None when they never fit with what runs now (their nodes leave first).
        """
        table, bookings = self.table, self.bookings
        shapes = [m.shape for m in members]
        avail: dict[int, list[float]] = {}
        cap_cpus, cap_gpus, cap_memory = table.cap_cpus, table.cap_gpus, table.cap_memory
        usable, leaves_at = table.usable, table.leaves_at

        def state(i: int) -> list[float]:
            a = avail.get(i)
            if a is None:
                a = avail[i] = [
                    table.free_cpus[i],
                    table.free_gpus[i],
                    table.free_memory[i],
                    table.holders[i],
                ]
            return a

        fitting = [{i for i in candidates if usable[i] and _fits(state(i), s)} for s in shapes]
        ordered: list[list[int] | None] = [None] * len(shapes)  # sorted(fitting[k]), kept
        booked = bookings.on_node if bookings is not None else {}
        blocked: dict[int, float] = {}  # booked node -> no window of this task fits before
        group: list[int] = []
        events = _events(self.endings, self.started, bookings.ends if bookings else [], self.now)
        pending = next(events, None)
        while pending is not None:
            at = pending[0]
            group.clear()
            # Worth a new look only if a node newly fits, a booked node gains room, or a
            # booking ends: otherwise the answer is what it was at the previous time.
            changed = False
            while pending is not None and pending[0] == at:
                _, i, c, g, m = pending
                pending = next(events, None)
                if i < 0:
                    changed = True  # a booking ends: a check point only
                    continue
                if not usable[i]:
                    continue  # set aside for a preempting task
                a = state(i)
                a[0] = min(a[0] + c, cap_cpus[i])
                a[1] = min(a[1] + g, cap_gpus[i])
                a[2] = min(a[2] + m, cap_memory[i])
                a[3] -= 1
                group.append(i)
                blocked.pop(i, None)  # room grew: look again
            for i in group:
                a = avail[i]
                for k, s in enumerate(shapes):
                    if _fits(a, s):
                        f = fitting[k]
                        if i not in f:
                            f.add(i)
                            changed = True
                            sorted_k = ordered[k]
                            if sorted_k is not None:
                                bisect.insort(sorted_k, i)
                        elif i in booked:
                            changed = True
            if not changed or any(len(f) < s[3] for f, s in zip(fitting, shapes, strict=True)):
                continue
            for k, m in enumerate(members):
                f, end = fitting[k], at + m.walltime
                leaving = [i for i in self.mortal if leaves_at[i] < end and i in f]
                if leaving:
                    f.difference_update(leaving)
                    ordered[k] = None
            if any(len(f) < s[3] for f, s in zip(fitting, shapes, strict=True)):
                continue
            for k, f in enumerate(fitting):
                if ordered[k] is None:
                    ordered[k] = sorted(f)
            lists = [o for o in ordered if o is not None]
            if len(members) == 1 and not booked:
                nodes = [lists[0][: shapes[0][3]]]
            else:
                placed = _together(members, lists, avail, at, bookings, blocked)
                if placed is None:
                    continue
                nodes = placed
            return Reservation(at, nodes, _extras(avail, members, nodes))
        return None


def _fits(a: list[float], shape: Shape) -> bool:
    cpus, gpus, memory, _, whole = shape
    if whole:
        return a[3] == 0
    return a[0] >= cpus and a[1] >= gpus and a[2] >= memory


def _together(
    members: Sequence[PendingTask],
    fitting: list[list[int]],
    avail: dict[int, list[float]],
    at: float,
    bookings: Bookings | None,
    blocked: dict[int, float],
) -> list[list[int]] | None:
    """First-fit placement of every member at ``at``, members sharing nodes; or None.

    ``blocked`` (one member only): booked nodes known not to fit before a time.
    """
    taken: dict[int, list[Booking]] = {}
    booked = bookings.on_node if bookings is not None else {}
    result: list[list[int]] = []
    for member, f in zip(members, fitting, strict=True):
        shape, end = member.shape, at + member.walltime
        cpus, gpus, memory, count, whole = shape
        chosen: list[int] = []
        for i in f:
            mine = taken.get(i, [])
            if mine:
                if whole or any(b[5] for b in mine):
                    continue
                a = avail[i]
                if (
                    a[0] - sum(b[2] for b in mine) < cpus
                    or a[1] - sum(b[3] for b in mine) < gpus
                    or a[2] - sum(b[4] for b in mine) < memory
                ):
                    continue
            if (mine or i in booked) and bookings is not None:
                if len(members) > 1:
                    if not bookings.fits(i, at, end, shape, mine):
                        continue
                elif blocked.get(i, at) > at:
                    continue
                else:
                    until = bookings.conflict(i, at, end, shape)
                    if until is not None:
                        blocked[i] = until
                        continue
            chosen.append(i)
            if len(chosen) == count:
                break
        if len(chosen) < count:
            return None
        for i in chosen:
            taken.setdefault(i, []).append((at, end, cpus, gpus, memory, whole))
        result.append(chosen)
    return result


def _extras(
    avail: dict[int, list[float]], members: Sequence[PendingTask], nodes: list[list[int]]
) -> dict[int, Extra]:
    extras: dict[int, Extra] = {}
    for member, chosen in zip(members, nodes, strict=True):
        cpus, gpus, memory, _, whole = member.shape
        for i in chosen:
            if whole:
                extras[i] = None
                continue
            extra = extras.get(i, False)
            if extra is None:
                continue
            if extra is False:
                a = avail[i]
                extra = (a[0], int(a[1]), int(a[2]))
            assert extra is not False
            extras[i] = (extra[0] - cpus, extra[1] - gpus, extra[2] - memory)
    return extras


def _events(
    endings: list[Ending], started: list[Started], booking_ends: list[float], now: float
) -> Iterator[tuple[float, int, float, int, int]]:
    """(time, node, cpus, gpus, memory) freed, in time order; node -1: a check point.

    An expected end already passed counts as the instant after ``now``.
    """
    after_now = math.nextafter(now, math.inf)
    first = bisect.bisect_right(endings, (now, math.inf))
    extra: list[tuple[float, int, float, int, int]] = sorted(started, key=lambda e: (e[0], e[1]))
    if booking_ends:
        extra = sorted(
            [*extra, *((e, -1, 0.0, 0, 0) for e in booking_ends)], key=lambda e: (e[0], e[1])
        )
    for k in range(first):
        e = endings[k]
        yield (after_now, e[1], e[3], e[4], e[5])
    x, nx = 0, len(extra)
    for k in range(first, len(endings)):
        e = endings[k]
        while x < nx and (extra[x][0], extra[x][1]) < (e[0], e[1]):
            yield extra[x]
            x += 1
        yield (e[0], e[1], e[3], e[4], e[5])
    yield from extra[x:]


__all__ = ["Booking", "Bookings", "Extra", "Planner", "Reservation", "Started"]
