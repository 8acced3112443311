"""The queue in policy order, kept across passes: one sorted bucket per class (and project).

Order: QoS class (strict), then inside realtime/urgent earliest deadline first (with
``edf``; fair share breaks deadline ties), elsewhere fair share between projects (lower
decayed usage first) when ``fair_share`` is on; then submit time, then queue position
(``seq``, the order of submission). ``QueueOrder`` keeps each bucket sorted as tasks come
and go: a removed task leaves a tombstone (scan id ``DEAD``) until the bucket is compacted,
so applying a pass's starts costs a binary search each, not a rebuild. Tasks added in bulk
(``extend``) are indexed by id only when an event first needs it, so a one-off stateless
pass does not pay for the index. Pure: no clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import attrgetter
from typing import Any

from hexflow.model import QoS
from hexflow.scheduler.decisions import PendingTask, PolicyConfig, Shape

DEAD = 0  # scan id of a removed entry: never looked at again
GANG = 1  # scan id of a gang member: never skipped by the failed-shape memo
EDF_CLASSES = (QoS.REALTIME, QoS.URGENT)
CLASSES = tuple(sorted(QoS, key=attrgetter("priority")))
_by_submit = attrgetter("submit_time")


class Bucket:
    """Tasks of one class (and project) in order, with their walltimes and scan ids.

    ``sids[k]`` is the shape id of ``tasks[k]`` (``GANG`` for gang members, ``DEAD`` once
    removed), so a pass can skip hopeless tasks without touching the task objects.
    """

    __slots__ = ("dead", "edf", "seqs", "sids", "sorted", "tasks", "walls")

    def __init__(self, edf: bool) -> None:
        self.edf = edf
        self.tasks: list[PendingTask] = []
        self.seqs: list[int] = []
        self.walls: list[float] = []
        self.sids: list[int] = []
        self.dead = 0
        self.sorted = True

    def __len__(self) -> int:
        return len(self.tasks) - self.dead

    def key(self, k: int, usage: Mapping[str, float], fair: bool) -> tuple[float, ...]:
        task, seq = self.tasks[k], self.seqs[k]
        if not self.edf:
            return (task.submit_time, seq)
        deadline = math.inf if task.deadline is None else task.deadline
        share = usage.get(task.project, 0.0) if fair else 0.0
        return (deadline, share, task.submit_time, seq)

    def append(self, task: PendingTask, seq: int, sid: int) -> None:
        self.tasks.append(task)
        self.seqs.append(seq)
        self.walls.append(task.walltime)
        self.sids.append(sid)

    def insert(self, k: int, task: PendingTask, seq: int, sid: int) -> None:
        self.tasks.insert(k, task)
        self.seqs.insert(k, seq)
        self.walls.insert(k, task.walltime)
        self.sids.insert(k, sid)

    def sort(self, usage: Mapping[str, float], fair: bool) -> None:
        """Sort live entries by the bucket's key, dropping tombstones."""
        n = len(self.tasks)
        live = [k for k in range(n) if self.sids[k] != DEAD] if self.dead else list(range(n))
        if self.edf:
            live.sort(key=lambda k: self.key(k, usage, fair))
        else:
            # Entries are in seq order among equal submit times (appends carry the newest
            # seq), so a stable sort on submit time alone gives (submit time, seq).
            submit = [t.submit_time for t in self.tasks]
            live.sort(key=submit.__getitem__)
        if self.dead or live != list(range(n)):
            self.tasks = [self.tasks[k] for k in live]
            self.seqs = [self.seqs[k] for k in live]
            self.walls = [self.walls[k] for k in live]
            self.sids = [self.sids[k] for k in live]
        self.dead = 0
        self.sorted = True


class QueueOrder:
    """The queued tasks by id, and in buckets by (class, project) in policy order."""

    def __init__(self, config: PolicyConfig) -> None:
        self.edf = {q: config.edf and q in EDF_CLASSES for q in QoS}
        # Bucketed by project only where fair share orders projects, so that elsewhere the
        # submit-time order keeps queue position as the last tie-break.
        self.by_project = {q: config.fair_share and not self.edf[q] for q in QoS}
        self.fair = config.fair_share
        self.usage: Mapping[str, float] = {}
        self.buckets: dict[QoS, dict[str, Bucket]] = {q: {} for q in QoS}
        self._entries: dict[str, PendingTask] = {}  # in queue position order
        self._seq_of: dict[str, int] = {}
        self._bulk: list[tuple[list[PendingTask], int]] = []  # (tasks, first seq): not in yet
        self.count = 0
        self.noted: dict[str, int] = {}  # seq of deadline tasks and gang members
        self.shape_ids: dict[Shape, int] = {}
        self.shapes: list[Shape | None] = [None, None]  # sid -> shape (DEAD, GANG: none)
        self.shape_count: list[int] = [0, 0]  # queued tasks per shape
        self.gangs: dict[str, dict[str, PendingTask]] = {}  # gang -> members by seq
        self.deadlines: dict[str, PendingTask] = {}  # tasks admission may refuse for time
        self.seq = 0

    def __len__(self) -> int:
        return self.count

    @property
    def entries(self) -> dict[str, PendingTask]:
        """Queued tasks by id, in queue position order."""
        if self._bulk:
            self._index()
        return self._entries

    @property
    def seq_of(self) -> dict[str, int]:
        """Each queued task's queue position (a number that only grows)."""
        if self._bulk:
            self._index()
        return self._seq_of

    def _index(self) -> None:
        # Tasks added in bulk are indexed by id on first need: a one-off pass never pays.
        for tasks, first in self._bulk:
            ids = [t.task_id for t in tasks]
            before = len(self._entries)
            self._entries.update(zip(ids, tasks, strict=True))
            if len(self._entries) - before != len(tasks):
                seen: set[str] = set()
                for task_id in ids:
                    if task_id in seen:
                        raise ValueError(
                            f"queue: task id {task_id!r} appears twice; ids must be unique"
                        )
                    seen.add(task_id)
            self._seq_of.update(zip(ids, range(first, first + len(tasks)), strict=True))
        self._bulk.clear()

    def sid(self, shape: Shape) -> int:
        sid = self.shape_ids.get(shape)
        if sid is None:
            sid = self.shape_ids[shape] = len(self.shapes)
            self.shapes.append(shape)
            self.shape_count.append(0)
        return sid

    # -- events -----------------------------------------------------------------------

    def add(self, task: PendingTask) -> None:
        """Queue ``task`` last in queue position (an earlier task of that id is replaced)."""
        if task.task_id in self.entries:
            self.remove(task.task_id)
        seq = self.seq = self.seq + 1
        self._entries[task.task_id] = task
        self._seq_of[task.task_id] = seq
        self.count += 1
        sid = self.sid(task.shape)
        self.shape_count[sid] += 1
        if task.gang is not None:
            self.gangs.setdefault(task.gang, {})[task.task_id] = task
            self.noted[task.task_id] = seq
        if task.deadline is not None and not task.best_effort:
            self.deadlines[task.task_id] = task
            self.noted[task.task_id] = seq
        bucket = self._bucket(task, create=True)
        assert bucket is not None
        scan = GANG if task.gang is not None else sid
        if not bucket.sorted or not bucket.tasks:
            bucket.append(task, seq, scan)
            return
        key = self._key_of(bucket, task, seq)
        n = len(bucket.tasks)
        if key >= bucket.key(n - 1, self.usage, self.fair):
            bucket.append(task, seq, scan)
        else:
            k = bisect.bisect_right(range(n), key, key=self._keyer(bucket))
            bucket.insert(k, task, seq, scan)

    def extend(self, tasks: Iterable[PendingTask]) -> None:
        """``add`` each task in turn; buckets are sorted once, when next read."""
        tasks = list(tasks)
        if self.count:
            for task in tasks:  # may replace queued tasks: one by one, as ``add`` would
                self.add(task)
            return
        first = self.seq + 1
        self.seq += len(tasks)
        self.count += len(tasks)
        self._bulk.append((tasks, first))
        shape_ids, counts, noted = self.shape_ids, self.shape_count, self.noted
        buckets, by_project = self.buckets, self.by_project
        # per (class, project): the bound appends of its bucket's columns
        appends: dict[object, tuple[Callable[[Any], None], ...]] = {}
        # per bucket: [latest submit time, still in submit order] (then no sort is needed)
        ordered: dict[object, list[Any]] = {}
        seq = first - 1
        for task in tasks:  # one loop, few lookups: this is the stateless pass's setup
            seq += 1
            sid = shape_ids.get(task.shape)
            if sid is None:
                sid = self.sid(task.shape)
            counts[sid] += 1
            qos = task.qos
            key = (qos, task.project) if by_project[qos] else qos
            columns = appends.get(key)
            if columns is None:
                project = task.project if by_project[qos] else ""
                bucket = buckets[qos].get(project)
                if bucket is None:
                    bucket = buckets[qos][project] = Bucket(self.edf[qos])
                bucket.sorted = False
                ordered[key] = [-math.inf, not bucket.edf, bucket]
                columns = appends[key] = (
                    bucket.tasks.append,
                    bucket.seqs.append,
                    bucket.walls.append,
                    bucket.sids.append,
                )
            if task.gang is not None:
                self.gangs.setdefault(task.gang, {})[task.task_id] = task
                noted[task.task_id] = seq
                sid = GANG
            if task.deadline is not None and not task.best_effort:
                self.deadlines[task.task_id] = task
                noted[task.task_id] = seq
            add_task, add_seq, add_wall, add_sid = columns
            add_task(task)
            add_seq(seq)
            add_wall(task.walltime)
            add_sid(sid)
            latest = ordered[key]
            if task.submit_time >= latest[0]:
                latest[0] = task.submit_time
            else:
                latest[1] = False
        for _, in_order, bucket in ordered.values():
            bucket.sorted = in_order  # appended in (submit time, seq) order: sorted already

    def remove(self, task_id: str) -> PendingTask | None:
        task = self.entries.pop(task_id, None)
        if task is None:
            return None
        seq = self._seq_of.pop(task_id)
        self.count -= 1
        self.noted.pop(task_id, None)
        self.shape_count[self.shape_ids[task.shape]] -= 1
        if task.gang is not None:
            members = self.gangs[task.gang]
            del members[task_id]
            if not members:
                del self.gangs[task.gang]
        self.deadlines.pop(task_id, None)
        bucket = self._bucket(task, create=False)
        assert bucket is not None
        if bucket.sorted:
            n = len(bucket.tasks)
            k = bisect.bisect_left(
                range(n), self._key_of(bucket, task, seq), key=self._keyer(bucket)
            )
        else:
            k = bucket.seqs.index(seq)
        assert bucket.seqs[k] == seq and bucket.sids[k] != DEAD
        bucket.sids[k] = DEAD
        bucket.dead += 1
        if not len(bucket):
            del self.buckets[task.qos][self._project(task)]
        elif bucket.dead > 64 and bucket.dead * 2 > len(bucket.tasks):
            bucket.sort(self.usage, self.fair)  # compact
        return task

    def set_usage(self, usage: Mapping[str, float]) -> None:
        """New decayed usage: project order is read per pass; EDF buckets may need a sort."""
        old, self.usage = self.usage, dict(usage)
        if not self.fair:
            return
        for qos in EDF_CLASSES:
            bucket = self.buckets[qos].get("") if self.edf[qos] else None
            if bucket is None or not bucket.sorted:
                continue
            for k, task in enumerate(bucket.tasks):
                p = task.project
                if bucket.sids[k] != DEAD and old.get(p, 0.0) != self.usage.get(p, 0.0):
                    bucket.sorted = False
                    break

    # -- views ------------------------------------------------------------------------

    def ordered(self, qos: QoS, usage: Mapping[str, float] | None = None) -> list[Bucket]:
        """The class's buckets in policy order (``usage`` orders projects; default: own)."""
        buckets = self.buckets[qos]
        for bucket in buckets.values():
            if not bucket.sorted:
                bucket.sort(self.usage, self.fair)
        if not self.by_project[qos]:
            return list(buckets.values())
        usage = self.usage if usage is None else usage
        return [buckets[p] for p in sorted(buckets, key=lambda p: (usage.get(p, 0.0), p))]

    def queue(self) -> list[PendingTask]:
        """The queued tasks in queue position (submission) order."""
        return list(self.entries.values())

    def in_order(self) -> Iterator[PendingTask]:
        """Every queued task in policy order (admission not applied)."""
        for qos in CLASSES:
            for bucket in self.ordered(qos):
                for k, task in enumerate(bucket.tasks):
                    if bucket.sids[k] != DEAD:
                        yield task

    def _project(self, task: PendingTask) -> str:
        return task.project if self.by_project[task.qos] else ""

    def _bucket(self, task: PendingTask, create: bool) -> Bucket | None:
        buckets = self.buckets[task.qos]
        project = self._project(task)
        bucket = buckets.get(project)
        if bucket is None and create:
            bucket = buckets[project] = Bucket(self.edf[task.qos])
        return bucket

    def _key_of(self, bucket: Bucket, task: PendingTask, seq: int) -> tuple[float, ...]:
        if not bucket.edf:
            return (task.submit_time, seq)
        deadline = math.inf if task.deadline is None else task.deadline
        share = self.usage.get(task.project, 0.0) if self.fair else 0.0
        return (deadline, share, task.submit_time, seq)

    def _keyer(self, bucket: Bucket) -> Callable[[int], tuple[float, ...]]:
        usage, fair = self.usage, self.fair
        return lambda k: bucket.key(k, usage, fair)


def priority_order(
    queue: Iterable[PendingTask], usage: Mapping[str, float], config: PolicyConfig
) -> Iterator[PendingTask]:
    """The queue in the order the policy considers it (no admission)."""
    order = QueueOrder(config)
    order.set_usage(usage)
    order.extend(queue)
    return order.in_order()


__all__ = ["CLASSES", "DEAD", "EDF_CLASSES", "GANG", "Bucket", "QueueOrder", "priority_order"]
