"""ReadyQueue: which ready task goes next, given what is free. Pure: no I/O, no clock.

Order: QoS priority, then earliest absolute deadline, then submission order. ``place``
pops tasks that fit the free resources; a task that does not fit is stepped over (so
small tasks backfill around a large one) but keeps its place for the next call. The scan
is bounded so a long queue of large tasks does not make every call O(n).
"""

from __future__ import annotations

import heapq
import math

from hexflow.model import Resources

SCAN_LIMIT = 64

# A heap entry: (priority, deadline, seq, task_id, request). Tuples compare in C; seq is
# unique, so the comparison never reaches task_id or request.
_Entry = tuple[int, float, int, str, Resources]


class ReadyQueue:
    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._seq = 0
        # task id -> seq of its live heap entry; entries with another seq are stale (removed
        # or pushed again) and are dropped lazily when they reach the top of the heap.
        self._members: dict[str, int] = {}
        # cpus asked by each live member, and how many live members ask for each amount:
        # when less than the smallest request is free, ``place`` returns without a scan.
        self._cpus: dict[str, float] = {}
        self._cpus_count: dict[float, int] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._members

    def push(
        self, task_id: str, request: Resources, priority: int, deadline: float | None = None
    ) -> None:
        self._seq += 1
        if task_id in self._members:
            self._forget(task_id)
        self._members[task_id] = self._seq
        self._cpus[task_id] = request.cpus
        self._cpus_count[request.cpus] = self._cpus_count.get(request.cpus, 0) + 1
        entry = (priority, math.inf if deadline is None else deadline, self._seq, task_id, request)
        heapq.heappush(self._heap, entry)

    def remove(self, task_id: str) -> None:
        """Forget a queued task (cancelled); lazily dropped from the heap."""
        if self._members.pop(task_id, None) is not None:
            self._forget(task_id)

    def _forget(self, task_id: str) -> None:
        cpus = self._cpus.pop(task_id)
        left = self._cpus_count[cpus] - 1
        if left:
            self._cpus_count[cpus] = left
        else:
            del self._cpus_count[cpus]

    def front(self, limit: int) -> list[str]:
        """The first ``limit`` queued task ids in order, without removing them."""
        heap = self._heap
        members = self._members
        taken: list[_Entry] = []
        while heap and len(taken) < limit:
            entry = heapq.heappop(heap)
            if members.get(entry[3]) == entry[2]:
                taken.append(entry)  # stale entries are dropped on the way
        for entry in taken:
            heapq.heappush(heap, entry)
        return [entry[3] for entry in taken]

    def smallest_cpus(self) -> float:
        """The smallest cpus any queued task asks for (inf when the queue is empty)."""
        return min(self._cpus_count, default=math.inf)

    def place(self, free: Resources, strict: bool = False) -> tuple[list[str], Resources]:
        """Pop the tasks to start now; return them and what stays free afterwards.

        ``strict``: stop at the first task that does not fit (a prefix of the order, which
        any priority policy would start too); otherwise step over it (greedy backfill).
        """
        placed: list[str] = []
        if self._cpus_count and free.cpus < min(self._cpus_count):
            return placed, free  # nothing queued fits: skip the scan (the common busy case)
        skipped: list[_Entry] = []
        heap = self._heap
        members = self._members
        while heap and len(skipped) < SCAN_LIMIT:
            entry = heap[0]
            _, _, seq, task_id, req = entry
            if members.get(task_id) != seq:
                heapq.heappop(heap)
                continue
            if req.cpus <= free.cpus and req.memory <= free.memory and req.gpus <= free.gpus:
                heapq.heappop(heap)
                del members[task_id]
                self._forget(task_id)
                placed.append(task_id)
                free = free.minus(req)
                if free.cpus <= 0 and free.gpus <= 0:
                    break
            elif strict:
                break
            else:
                skipped.append(heapq.heappop(heap))
        for entry in skipped:
            heapq.heappush(heap, entry)
        return placed, free
