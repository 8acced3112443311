"""Reservations: the earliest time a blocked task (or a whole gang) fits, and on which nodes.

``Planner.earliest`` walks the ends of running work (and of work started in this pass)
in time order, tracking what each node will have free; the first time at which every
member fits on specific nodes (first fit in cluster order, on nodes that do not leave
before the member's walltime ends) is the reservation. Gang members share one start
time and may share nodes. With conservative backfilling the pass's ``Bookings`` count
too: a booked node must fit the whole window. Pure: no clock.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from hexflow.scheduler.bookings import Booking, Bookings
from hexflow.scheduler.capacity import Ending
from hexflow.scheduler.cluster import FreeNodes
from hexflow.scheduler.decisions import PendingTask, Shape

# (end, node, cpus, gpus, memory): work started in this pass
Started = tuple[float, int, float, int, int]
# what stays free on a reserved node once the reservation has its share (None: whole)
Extra = tuple[float, int, int] | None
# (time, nodes whose room grew then, whether a booking ended then)
_Step = tuple[float, list[int], bool]


@dataclass(frozen=True, slots=True)
class Reservation:
    at: float
    nodes: list[list[int]]  # per member, in the members' order
    extras: dict[int, Extra]  # reserved node -> what stays free there at ``at``


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
        # nodes that leave, by leave time: those leaving before some time are a prefix
        mortal = sorted((at, i) for i, at in enumerate(table.leaves_at) if at < math.inf)
        self.mortal_at = [at for at, _ in mortal]
        self.mortal = [i for _, i in mortal]
        self.avail: dict[int, list[float]] = {}

    def earliest(
        self, candidates: Iterable[int], members: Sequence[PendingTask]
    ) -> Reservation | None:
        """The earliest time after now all ``members`` fit at once, and where; or None.

        None when they never fit with what runs now (their nodes leave first).
        """
        self.avail = {}
        shapes = [m.shape for m in members]
        usable = self.table.usable
        fitting = [
            {i for i in candidates if usable[i] and _fits(self._state(i), s)} for s in shapes
        ]
        if self.bookings is not None and len(members) == 1:
            return self._earliest_booked(fitting[0], members[0])
        booked = self.bookings.on_node if self.bookings is not None else {}
        ordered: list[list[int] | None] = [None] * len(shapes)  # sorted(fitting[k]), kept
        for at, grown, booking_ended in self._walk():
            # Worth a new look only if a node newly fits, a booked node gains room, or a
            # booking ends: otherwise the answer is what it was at the previous time.
            changed = booking_ended
            for i in grown:
                a = self.avail[i]
                for k, s in enumerate(shapes):
                    if _fits(a, s):
                        if i not in fitting[k]:
                            fitting[k].add(i)
                            changed = True
                            sorted_k = ordered[k]
                            if sorted_k is not None:
                                bisect.insort(sorted_k, i)
                        elif i in booked:
                            changed = True
            if not changed or any(len(f) < s[3] for f, s in zip(fitting, shapes, strict=True)):
                continue
            for k, m in enumerate(members):
                if self._drop_leaving(fitting[k], at + m.walltime):
                    ordered[k] = None
            if any(len(f) < s[3] for f, s in zip(fitting, shapes, strict=True)):
                continue
            lists = [sorted(f) if o is None else o for f, o in zip(fitting, ordered, strict=True)]
            ordered = list(lists)
            if len(members) == 1:
                nodes = [lists[0][: shapes[0][3]]]
            else:
                placed = self._together(members, lists, at)
                if placed is None:
                    continue
                nodes = placed
            return Reservation(at, nodes, _extras(self.avail, members, nodes))
        return None

    def _earliest_booked(self, fitting: set[int], task: PendingTask) -> Reservation | None:
        """``earliest`` for one task among bookings: a booked node found too full is not
        looked at again until running work there ends or the time it named has come."""
        bookings = self.bookings
        assert bookings is not None
        booked = bookings.on_node
        shape, count = task.shape, task.shape[3]
        ready = fitting  # fits with what runs, and not known to be blocked by bookings
        blocked: dict[int, float] = {}  # node -> no window of this task fits before
        retries: list[tuple[float, int]] = []
        for at, grown, booking_ended in self._walk():
            changed = booking_ended
            for i in grown:
                if _fits(self.avail[i], shape) and (i not in ready or i in blocked):
                    ready.add(i)
                    blocked.pop(i, None)
                    changed = True
            while retries and retries[0][0] <= at:
                until, i = heapq.heappop(retries)
                if blocked.get(i) == until:
                    del blocked[i]
                    ready.add(i)
                    changed = True
            if not changed or len(ready) < count:
                continue
            self._drop_leaving(ready, at + task.walltime)
            end = at + task.walltime
            chosen: list[int] = []
            for i in sorted(ready):
                if i in booked:
                    conflict = bookings.conflict(i, at, end, shape)
                    if conflict is not None:
                        ready.discard(i)
                        blocked[i] = conflict
                        heapq.heappush(retries, (conflict, i))
                        continue
                chosen.append(i)
                if len(chosen) == count:
                    return Reservation(at, [chosen], {})
        return None

    def _state(self, i: int) -> list[float]:
        a = self.avail.get(i)
        if a is None:
            t = self.table
            a = self.avail[i] = [t.free_cpus[i], t.free_gpus[i], t.free_memory[i], t.holders[i]]
        return a

    def _walk(self) -> Iterator[_Step]:
        """Each time room grows, in order: what runs and what the pass started ending."""
        t = self.table
        cap_cpus, cap_gpus, cap_memory, usable = t.cap_cpus, t.cap_gpus, t.cap_memory, t.usable
        ends = self.bookings.ends if self.bookings is not None else []
        events = _events(self.endings, self.started, ends, self.now)
        state = self._state
        pending = next(events, None)
        while pending is not None:
            at = pending[0]
            grown: list[int] = []
            booking_ended = False
            while pending is not None and pending[0] == at:
                _, i, c, g, m = pending
                pending = next(events, None)
                if i < 0:
                    booking_ended = True  # a check point only
                    continue
                if not usable[i]:
                    continue  # set aside for a preempting task
                a = state(i)
                a[0] = min(a[0] + c, cap_cpus[i])
                a[1] = min(a[1] + g, cap_gpus[i])
                a[2] = min(a[2] + m, cap_memory[i])
                a[3] -= 1
                grown.append(i)
            yield at, grown, booking_ended

    def _drop_leaving(self, nodes: set[int], end: float) -> bool:
        before = bisect.bisect_left(self.mortal_at, end)
        leaving = [i for i in self.mortal[:before] if i in nodes]
        nodes.difference_update(leaving)
        return bool(leaving)

    def _together(
        self, members: Sequence[PendingTask], fitting: list[list[int]], at: float
    ) -> list[list[int]] | None:
        """First-fit placement of every member at ``at``, members sharing nodes; or None."""
        bookings = self.bookings
        booked = bookings.on_node if bookings is not None else {}
        taken: dict[int, list[Booking]] = {}
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
                    a = self.avail[i]
                    if (
                        a[0] - sum(b[2] for b in mine) < cpus
                        or a[1] - sum(b[3] for b in mine) < gpus
                        or a[2] - sum(b[4] for b in mine) < memory
                    ):
                        continue
                if (
                    bookings is not None
                    and (mine or i in booked)
                    and not bookings.fits(i, at, end, shape, mine)
                ):
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


def _fits(a: list[float], shape: Shape) -> bool:
    cpus, gpus, memory, _, whole = shape
    if whole:
        return a[3] == 0
    return a[0] >= cpus and a[1] >= gpus and a[2] >= memory


def _extras(
    avail: dict[int, list[float]], members: Sequence[PendingTask], nodes: list[list[int]]
) -> dict[int, Extra]:
    """What stays free on each reserved node at the reservation's time (None: held whole)."""
    extras: dict[int, Extra] = {}
    whole_nodes: set[int] = set()
    for member, chosen in zip(members, nodes, strict=True):
        cpus, gpus, memory, _, whole = member.shape
        for i in chosen:
            if whole or i in whole_nodes:
                extras[i] = None
                whole_nodes.add(i)
                continue
            extra = extras.get(i)
            if extra is None:
                a = avail[i]
                extra = (a[0], int(a[1]), int(a[2]))
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


__all__ = ["Extra", "Planner", "Reservation", "Started"]
