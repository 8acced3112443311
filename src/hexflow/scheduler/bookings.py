"""Conservative backfilling's bookings: the reservations made so far in a pass, per node.

A node with bookings fits a request over [start, end) only if, at every instant of it,
what runs there (until its expected end), what this pass started there, what is booked
there and the request all fit. Base capacity only grows with time (work ends), so the
instants to check are the start and each booking's start inside the window. Bookings do
not move within a pass. Pure: no clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from hexflow.scheduler.capacity import Capacity
from hexflow.scheduler.cluster import FreeNodes
from hexflow.scheduler.decisions import Shape

# (start, end, cpus, gpus, memory, whole node): one booking on one node
Booking = tuple[float, float, float, int, int, bool]


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
                return max(float(b[1]) for b in booked)
            return None if self._base_at(i, start)[3] == 0 else after_start
        if any(b[5] for b in booked):
            return max(float(b[1]) for b in booked if b[5])
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


__all__ = ["Booking", "Bookings"]
