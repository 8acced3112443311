"""One decision pass: the policy's rules applied to a ``PolicyState``'s queue and capacity.

The pass walks the admitted queue in policy order and starts what fits (first fit),
preempts for realtime/urgent work, and gives blocked tasks reservations (EASY: the first
one; conservative: each, up to the depth). Hopeless tasks are skipped without a look: a
shape that failed to start with some walltime fails with any longer one for the rest of
the pass (free capacity only shrinks), so once no more reservations are given, the scan
visits only tasks that could still start. Works on a copy of the free table: the state is
not changed. Pure: no clock, no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping

from hexflow.model import QoS
from hexflow.scheduler.admission import Limits, rejections
from hexflow.scheduler.bookings import Bookings
from hexflow.scheduler.capacity import Capacity
from hexflow.scheduler.decisions import (
    Decision,
    PendingTask,
    PolicyConfig,
    Preempt,
    Reserve,
    Shape,
    Start,
)
from hexflow.scheduler.ordering import CLASSES, DEAD, Bucket, QueueOrder
from hexflow.scheduler.preemption import VictimIndex, Victims
from hexflow.scheduler.reservation import Extra, Planner, Started

# (node index, cpus, gpus, memory, exclusive, the head's extra there before, or the node
# itself when it had none): what ``_commit`` changed
_Undo = list[tuple[int, float, int, int, bool, Extra | int]]


class Pass:
    """One decision pass over a ``PolicyState``'s queue, capacity and usage."""

    def __init__(
        self,
        order: QueueOrder,
        capacity: Capacity,
        victims: Victims | None,
        limits: Limits,
        now: float,
        config: PolicyConfig,
    ) -> None:
        self.order, self.capacity, self.limits = order, capacity, limits
        self.now, self.config = now, config
        self.usage: Mapping[str, float] = order.usage
        self.mode = config.backfill_mode
        self.table = table = capacity.table.copy()
        # Nodes that may take new work now, in cluster order; full ones are pruned lazily.
        self.candidates: dict[int, None] = dict.fromkeys(capacity.open_nodes())
        # Upper bounds of what any candidate has free (exact after a failed full scan).
        self.max_cpus = max((table.free_cpus[i] for i in self.candidates), default=0.0)
        self.max_gpus = max((table.free_gpus[i] for i in self.candidates), default=0)
        self.max_memory = max((table.free_memory[i] for i in self.candidates), default=0)
        # EASY: the head's start and, per reserved node, what stays free there then
        self.shadow = math.inf
        self.extras: dict[int, Extra] = {}
        self.bookings = Bookings(table, capacity, now) if self.mode == "conservative" else None
        # reservations still to give; ``closed``: none left (hopeless tasks may be skipped)
        depth = config.reservation_depth
        self.left = {"none": 0, "easy": 1}.get(self.mode, math.inf if depth is None else depth)
        self.closed = False
        self.reserved = False  # a blocked task holds a reservation: the memo is in force
        self.started: list[Started] = []
        self.planner: Planner | None = None
        self.failed: dict[Shape, float] = {}
        self.victims = victims
        self.victim_index: VictimIndex | None = None
        self.seen_gangs: set[str] = set()
        self.charged: dict[str, float] | None = dict(self.usage) if config.charge_in_pass else None
        self.decisions: list[Decision] = []

    # -- the pass ---------------------------------------------------------------------

    def run(self) -> list[Decision]:
        rejects, self.refused, bad_shapes = rejections(
            self.order, self.now, self.config, self.limits
        )
        self.decisions.extend(rejects)
        # per shape id: walltimes at or above this are skipped (-inf: every task)
        self.skip_all = [math.inf] * len(self.order.shapes)
        self.skip_all[DEAD] = -math.inf
        for sid in bad_shapes:
            self.skip_all[sid] = -math.inf
        self.skip = self.skip_all[:]  # and, once closed, the failed-shape memo
        for qos in CLASSES:
            may_preempt = self.config.preemption and qos.may_preempt
            if self.charged is not None and self.order.by_project[qos]:
                if not self._scan_charged(qos, may_preempt):
                    break
                continue
            buckets = self.order.ordered(qos, self.charged)
            if not all(self._scan(bucket, may_preempt) for bucket in buckets):
                break
        return self.decisions

    def _scan(self, bucket: Bucket, may_preempt: bool) -> bool:
        """Consider the bucket's tasks in order; False: the pass stops."""
        skip = self.skip_all if may_preempt else self.skip
        tasks, consider = bucket.tasks, self._consider
        for k, (walltime, sid) in enumerate(zip(bucket.walls, bucket.sids, strict=True)):
            if walltime >= skip[sid]:
                continue  # removed, refused, or a shape that failed with a shorter walltime
            if not consider(tasks[k], may_preempt):
                return False
        return True

    def _scan_charged(self, qos: QoS, may_preempt: bool) -> bool:
        """Like ``_scan`` over the class's projects, the least charged project first."""
        charged = self.charged
        assert charged is not None
        skip = self.skip_all if may_preempt else self.skip
        buckets = {p: b for p, b in self.order.buckets[qos].items()}
        self.order.ordered(qos)  # sorts them
        heap = [(charged.get(p, 0.0), p, 0) for p in buckets]
        heapq.heapify(heap)
        while heap:
            used, project, k = heapq.heappop(heap)
            if used != charged.get(project, 0.0):  # charged since (by a gang member)
                heapq.heappush(heap, (charged.get(project, 0.0), project, k))
                continue
            bucket = buckets[project]
            walls, sids, n = bucket.walls, bucket.sids, len(bucket.tasks)
            while k < n and walls[k] >= skip[sids[k]]:
                k += 1
            if k == n:
                continue
            if not self._consider(bucket.tasks[k], may_preempt):
                return False
            heapq.heappush(heap, (charged.get(project, 0.0), project, k + 1))
        return True

    def _consider(self, task: PendingTask, may_preempt: bool) -> bool:
        if not may_preempt and self.closed and not self.candidates:
            return False  # nothing is free and no later task may preempt: nothing can start
        if task.task_id in self.refused:
            return True
        if task.gang is not None:
            if task.gang not in self.seen_gangs:
                self.seen_gangs.add(task.gang)
                self._start_gang(list(self.order.gangs[task.gang].values()))
            return True
        hopeless = False
        if self.reserved:
            failed_at = self.failed.get(task.shape)
            hopeless = failed_at is not None and task.walltime >= failed_at
        if not hopeless:
            nodes = self._place(task)
            if nodes is not None:
                self._start(task, nodes)
                return True
            if self.reserved:
                self._failed(task.shape, task.walltime)
        if may_preempt and self._preempt(task):
            return True
        if self.mode == "none":
            return False  # strict order: the pass stops at the first task that waits
        self._blocked([task])
        return True

    def _failed(self, shape: Shape, walltime: float) -> None:
        at = self.failed[shape] = min(self.failed.get(shape, math.inf), walltime)
        if self.closed or self.mode == "easy":
            self.skip[self.order.shape_ids[shape]] = at

    def _late(self, task: PendingTask, start: float | None = None) -> bool:
        at = self.now if start is None else start
        return task.deadline is not None and at + task.walltime > task.deadline

    def _names(self, nodes: Iterable[int]) -> tuple[str, ...]:
        return tuple(self.table.names[i] for i in nodes)

    # -- placement --------------------------------------------------------------------

    def _place(self, task: PendingTask) -> list[int] | None:
        """First-fit nodes for ``task`` now, honouring reservations; or None."""
        cpus, gpus, memory, count, exclusive = task.shape
        candidates = self.candidates
        if count > len(candidates):
            return None
        if not exclusive and (
            cpus > self.max_cpus or gpus > self.max_gpus or memory > self.max_memory
        ):
            return None
        t = self.table
        end = self.now + task.walltime
        limited = end > self.shadow
        extras = self.extras
        bookings = self.bookings
        booked = bookings.on_node if bookings is not None else {}
        chosen: list[int] = []
        full: list[int] = []
        top_c, top_g, top_m = 0.0, 0, 0
        for i in candidates:
            fc = t.free_cpus[i]
            if fc <= 0 or t.exclusive[i] or not t.usable[i]:
                full.append(i)
                continue
            fg, fm = t.free_gpus[i], t.free_memory[i]
            top_c, top_g, top_m = max(top_c, fc), max(top_g, fg), max(top_m, fm)
            if t.leaves_at[i] < end:
                continue
            if exclusive:
                if t.holders[i]:
                    continue
            elif fc < cpus or fg < gpus or fm < memory:
                continue
            if limited and i in extras:
                extra = extras[i]
                if extra is None or exclusive:
                    continue
                if cpus > extra[0] or gpus > extra[1] or memory > extra[2]:
                    continue
            if (
                bookings is not None
                and i in booked
                and not bookings.fits(i, self.now, end, task.shape)
            ):
                continue
            chosen.append(i)
            if len(chosen) == count:
                break
        else:
            self.max_cpus, self.max_gpus, self.max_memory = top_c, top_g, top_m
        for i in full:
            del candidates[i]
        return chosen if len(chosen) == count else None

    def _start(self, task: PendingTask, nodes: list[int]) -> None:
        undo = self._commit(task, nodes)
        self.decisions.append(Start(task.task_id, self._names(nodes), self._late(task)))
        self._charge(task, undo)

    def _commit(self, task: PendingTask, nodes: list[int]) -> _Undo:
        t = self.table
        cpus, gpus, memory, _, exclusive = task.shape
        end = self.now + task.walltime
        past_shadow = end > self.shadow
        undo: _Undo = []
        for i in nodes:
            if exclusive:
                c, g, m = t.free_cpus[i], t.free_gpus[i], t.free_memory[i]
            else:
                c, g, m = cpus, gpus, memory
            t.take(i, c, g, m, exclusive)
            before: Extra | int = i  # no extra changed
            if past_shadow and i in self.extras:
                before = extra = self.extras[i]
                assert extra is not None  # _place never puts such work on a whole-node hold
                self.extras[i] = (extra[0] - c, extra[1] - g, extra[2] - m)
            self.started.append((end, i, c, g, m))
            if self.bookings is not None:
                self.bookings.started(i, end, c, g, m)
            undo.append((i, c, g, m, exclusive, before))
        return undo

    def _undo(self, undo: _Undo) -> None:
        t = self.table
        for i, c, g, m, exclusive, before in reversed(undo):
            t.give(i, c, g, m, exclusive)
            if not isinstance(before, int):
                self.extras[i] = before
            self.started.pop()
            if self.bookings is not None:
                self.bookings.unstarted(i)
            self.candidates.setdefault(i, None)
            self.max_cpus = max(self.max_cpus, t.free_cpus[i])
            self.max_gpus = max(self.max_gpus, t.free_gpus[i])
            self.max_memory = max(self.max_memory, t.free_memory[i])

    def _start_gang(self, members: list[PendingTask]) -> None:
        """All members start now, or none does (and the gang may get a reservation)."""
        done: list[tuple[PendingTask, list[int], _Undo]] = []
        for task in members:
            nodes = self._place(task)
            if nodes is None:
                for _, _, undo in reversed(done):
                    self._undo(undo)
                if self.mode != "none":
                    self._blocked(members)
                return
            done.append((task, nodes, self._commit(task, nodes)))
        for task, nodes, undo in done:
            self.decisions.append(Start(task.task_id, self._names(nodes), self._late(task)))
            self._charge(task, undo)

    def _charge(self, task: PendingTask, undo: _Undo) -> None:
        """``charge_in_pass``: the project's usage grows by the cpus taken x walltime."""
        if self.charged is not None:
            cpus = sum(c for _, c, _, _, _, _ in undo)  # an exclusive task: its nodes' cpus
            self.charged[task.project] = self.charged.get(task.project, 0.0) + cpus * task.walltime

    # -- reservations -----------------------------------------------------------------

    def _blocked(self, members: list[PendingTask]) -> None:
        """A task (or gang) that cannot start now: a reservation, while any are left."""
        if self.left <= 0:
            return
        if self.planner is None:
            self.planner = Planner(
                self.table, self.capacity.endings(), self.started, self.now, self.bookings
            )
        found = self.planner.earliest(self.candidates, members)
        if found is None:
            return  # never fits with what runs now (nodes leaving): a later task may
        at = found.at
        for task, nodes in zip(members, found.nodes, strict=True):
            if self.bookings is not None:
                for i in nodes:
                    self.bookings.book(i, at, at + task.walltime, task.shape)
            self.decisions.append(
                Reserve(task.task_id, self._names(nodes), at, self._late(task, at))
            )
        if self.bookings is None:
            self.shadow, self.extras = at, found.extras
        self.reserved = True
        self.left -= 1
        if self.left <= 0:
            self.closed = True
            ids = self.order.shape_ids
            for shape, walltime in self.failed.items():
                self.skip[ids[shape]] = walltime

    # -- preemption -------------------------------------------------------------------

    def _preempt(self, task: PendingTask) -> bool:
        """Preempt ``preempt``-class work for ``task``; reserve its nodes at now + grace."""
        at = self.now + self.config.preempt_grace
        if self.victim_index is None:
            if self.victims is None:
                self.victims = Victims(self.capacity)
            self.victim_index = VictimIndex(self.table, self.victims)
        reserved = self.bookings.on_node if self.bookings is not None else self.extras
        choice = self.victim_index.choose(task, reserved, at)
        if choice is None:
            return False
        nodes, victims = choice
        for victim in victims:
            self.decisions.append(
                Preempt(victim, f"preempted for {task.qos.value} task {task.task_id}")
            )
        for i in nodes:
            self.table.usable[i] = False  # set aside for the preempting task
            self.candidates.pop(i, None)
        self.decisions.append(Reserve(task.task_id, self._names(nodes), at, self._late(task, at)))
        return True


__all__ = ["Pass"]
