"""The facility policy: one pure decision pass over a cluster, a queue and what runs now.

Order: QoS class (strict), then earliest deadline inside realtime/urgent, then fair share
(lower decayed project usage first), then submit time, then queue position. Invariants of
the decisions returned: no node is over-allocated; nothing is placed on a down, draining or
set-aside node, nor on one that leaves before the task's walltime ends; the EASY head's
reservation is never delayed; a gang starts whole or not at all; the same input gives the
same decisions. See docs/scheduler.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import attrgetter

from hexflow.model import QoS
from hexflow.scheduler.cluster import Cluster, FreeNodes, NodeState
from hexflow.scheduler.decisions import (
    Decision,
    PendingTask,
    PolicyConfig,
    Preempt,
    Reject,
    Reserve,
    RunningTask,
    Start,
)
from hexflow.scheduler.preemption import VictimIndex

_EDF_CLASSES = (QoS.REALTIME, QoS.URGENT)
# (node index, cpus, gpus, memory, exclusive, extra before): what ``_commit`` changed
_Undo = list[tuple[int, float, int, int, bool, tuple[float, int, int] | None | bool]]


def decide(
    cluster: Cluster,
    queue: Sequence[PendingTask],
    running: Sequence[RunningTask],
    usage: Mapping[str, float],
    now: float,
    config: PolicyConfig | None = None,
) -> list[Decision]:
    """The decisions of one pass: rejects first, then starts, preemptions, reservations."""
    return _Pass(cluster, queue, running, usage, now, config or PolicyConfig()).run()


def priority_order(
    queue: Iterable[PendingTask], usage: Mapping[str, float], config: PolicyConfig
) -> Iterator[PendingTask]:
    """The queue in the order the policy considers it."""
    classes: dict[QoS, dict[str, list[PendingTask]]] = {q: {} for q in QoS}
    # Bucketed by project only where fair share orders projects, so that elsewhere the
    # stable sorts below keep queue position as the last tie-break.
    by_project = {q: config.fair_share and not (config.edf and q in _EDF_CLASSES) for q in QoS}
    for task in queue:
        qos = task.qos
        projects = classes[qos]
        key = task.project if by_project[qos] else ""
        bucket = projects.get(key)
        if bucket is None:
            projects[key] = [task]
        else:
            bucket.append(task)
    by_submit = attrgetter("submit_time")
    for qos in sorted(QoS, key=attrgetter("priority")):
        projects = classes[qos]
        if not projects:
            continue
        if config.edf and qos in _EDF_CLASSES:
            share = {t.project: usage.get(t.project, 0.0) for t in projects[""]}
            if not config.fair_share:
                share = dict.fromkeys(share, 0.0)
            tasks = projects[""]
            tasks.sort(key=by_submit)  # stable: queue position breaks the last ties
            tasks.sort(
                key=lambda t: (math.inf if t.deadline is None else t.deadline, share[t.project])
            )
            yield from tasks
        elif by_project[qos]:
            for project in sorted(projects, key=lambda p: (usage.get(p, 0.0), p)):
                bucket = projects[project]
                bucket.sort(key=by_submit)
                yield from bucket
        else:
            tasks = projects[""]
            tasks.sort(key=by_submit)
            yield from tasks


class _Pass:
    def __init__(
        self,
        cluster: Cluster,
        queue: Sequence[PendingTask],
        running: Sequence[RunningTask],
        usage: Mapping[str, float],
        now: float,
        config: PolicyConfig,
    ) -> None:
        self.cluster, self.queue, self.running = cluster, queue, running
        self.usage, self.now, self.config = usage, now, config
        self.table = table = FreeNodes(cluster, (s for r in running for s in r.slots))
        # Nodes that may take new work now, in cluster order; full ones are pruned lazily.
        self.candidates: dict[int, None] = {
            i: None
            for i in range(len(table))
            if table.usable[i] and not table.exclusive[i] and table.free_cpus[i] > 0
        }
        # Upper bounds of what any candidate has free (exact after a failed full scan).
        self.max_cpus = max((table.free_cpus[i] for i in self.candidates), default=0.0)
        self.max_gpus = max((table.free_gpus[i] for i in self.candidates), default=0)
        self.max_memory = max((table.free_memory[i] for i in self.candidates), default=0)
        self.head: PendingTask | None = None
        self.shadow = math.inf
        # reserved node -> what stays free there at the shadow time once the head has its
        # share (None: the head wants the node whole)
        self.extras: dict[int, tuple[float, int, int] | None] = {}
        # (end, node, cpus, gpus, memory): work started in this pass before the head
        self.started: list[tuple[float, int, float, int, int]] = []
        self.failed: dict[tuple[float, int, int, int, bool], float] = {}
        self.victims: VictimIndex | None = None
        self.decisions: list[Decision] = []

    # -- the pass ---------------------------------------------------------------------

    def run(self) -> list[Decision]:
        admitted = self._admit()
        gangs: dict[str, list[PendingTask]] = {}
        for task in admitted:
            if task.gang is not None:
                gangs.setdefault(task.gang, []).append(task)
        seen_gangs: set[str] = set()
        may_preempt_of = {q: self.config.preemption and q.may_preempt for q in QoS}
        failed = self.failed
        for task in priority_order(admitted, self.usage, self.config):
            may_preempt = may_preempt_of[task.qos]
            if not may_preempt and self.head is not None and not self.candidates:
                break  # nothing is free and no later task may preempt: nothing can start
            if task.gang is not None:
                if task.gang not in seen_gangs:
                    seen_gangs.add(task.gang)
                    self._start_gang(gangs[task.gang])
                continue
            if self.head is not None:
                failed_at = failed.get(task.shape)
                if failed_at is not None and task.walltime >= failed_at:
                    if may_preempt:
                        self._preempt(task)
                    continue
            nodes = self._place(task)
            if nodes is not None:
                self._commit(task, nodes)
                self.decisions.append(Start(task.task_id, self._names(nodes), self._late(task)))
                continue
            if self.head is not None:
                self.failed[task.shape] = min(self.failed.get(task.shape, math.inf), task.walltime)
            if may_preempt and self._preempt(task):
                continue
            if self.head is None:
                if not self.config.backfill:
                    break
                self._reserve_head(task)
        return self.decisions

    def _admit(self) -> list[PendingTask]:
        up = [n for n in self.cluster.nodes() if n.state is not NodeState.DOWN]
        most = (
            max((n.cpus for n in up), default=0.0),
            max((n.gpus for n in up), default=0),
            max((n.memory for n in up), default=0),
        )
        admitted: list[PendingTask] = []
        bad_gangs: dict[str, str] = {}
        admission, now, nodes_up = self.config.admission, self.now, len(up)
        most_cpus, most_gpus, most_memory = most
        keep = admitted.append
        for task in self.queue:
            cpus, gpus, memory, count, exclusive = task.shape
            deadline = task.deadline
            if (
                (deadline is None or now + task.walltime <= deadline or not admission)
                and count <= nodes_up
                and (
                    exclusive or (cpus <= most_cpus and gpus <= most_gpus and memory <= most_memory)
                )
            ):
                keep(task)  # the common case, without a call
                continue
            reason = self._refusal(task, nodes_up, most)
            if reason is None:
                keep(task)
                continue
            self.decisions.append(Reject(task.task_id, reason))
            if task.gang is not None:
                bad_gangs.setdefault(
                    task.gang, f"gang {task.gang}: member {task.task_id}: {reason}"
                )
        if bad_gangs:
            for task in admitted:
                if task.gang in bad_gangs:
                    self.decisions.append(Reject(task.task_id, bad_gangs[task.gang]))
            admitted = [t for t in admitted if t.gang not in bad_gangs]
        return admitted

    def _refusal(
        self, task: PendingTask, nodes_up: int, most: tuple[float, int, int]
    ) -> str | None:
        end = self.now + task.walltime
        if (
            self.config.admission
            and task.deadline is not None
            and end > task.deadline
            and not task.best_effort
        ):
            return (
                f"deadline {task.deadline:g} cannot be met: started now ({self.now:g}) with "
                f"walltime {task.walltime:g} s it ends at {end:g}; submit with best_effort "
                "to run it anyway"
            )
        r = task.resources
        if r.nodes > nodes_up:
            return f"asks for {r.nodes} nodes; the cluster has {nodes_up} that are not down"
        if not task.exclusive and (r.cpus > most[0] or r.gpus > most[1] or r.memory > most[2]):
            return f"asks per node for {r.describe()}; no node that is not down is that large"
        return None

    def _late(self, task: PendingTask, start: float | None = None) -> bool:
        at = self.now if start is None else start
        return task.deadline is not None and at + task.walltime > task.deadline

    def _names(self, nodes: Iterable[int]) -> tuple[str, ...]:
        return tuple(self.table.names[i] for i in nodes)

    # -- placement --------------------------------------------------------------------

    def _place(self, task: PendingTask) -> list[int] | None:
        """First-fit nodes for ``task`` now, honouring the head's reservation; or None."""
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
        limited = self.head is not None and end > self.shadow
        extras = self.extras
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
            chosen.append(i)
            if len(chosen) == count:
                break
        else:
            self.max_cpus, self.max_gpus, self.max_memory = top_c, top_g, top_m
        for i in full:
            del candidates[i]
        return chosen if len(chosen) == count else None

    def _commit(self, task: PendingTask, nodes: list[int]) -> _Undo:
        t = self.table
        cpus, gpus, memory, _, exclusive = task.shape
        end = self.now + task.walltime
        past_shadow = self.head is not None and end > self.shadow
        undo: _Undo = []
        for i in nodes:
            c, g, m = (
                (t.free_cpus[i], t.free_gpus[i], t.free_memory[i])
                if exclusive
                else (
                    cpus,
                    gpus,
                    memory,
                )
            )
            t.take(i, c, g, m, exclusive)
            before: tuple[float, int, int] | None | bool = False
            if past_shadow and i in self.extras:
                before = extra = self.extras[i]
                assert extra is not None  # _place never puts such work on a whole-node hold
                self.extras[i] = (extra[0] - c, extra[1] - g, extra[2] - m)
            if self.head is None:
                self.started.append((end, i, c, g, m))
            undo.append((i, c, g, m, exclusive, before))
        return undo

    def _undo(self, undo: _Undo) -> None:
        t = self.table
        for i, c, g, m, exclusive, before in reversed(undo):
            t.give(i, c, g, m, exclusive)
            if before is not False:
                self.extras[i] = before  # type: ignore[assignment]
            if self.head is None:
                self.started.pop()
            self.candidates.setdefault(i, None)
            self.max_cpus = max(self.max_cpus, t.free_cpus[i])
            self.max_gpus = max(self.max_gpus, t.free_gpus[i])
            self.max_memory = max(self.max_memory, t.free_memory[i])

    def _start_gang(self, members: list[PendingTask]) -> None:
        """All members start now, or none does (the gang waits; no reservation yet)."""
        done: list[_Undo] = []
        starts: list[Decision] = []
        for task in members:
            nodes = self._place(task)
            if nodes is None:
                for undo in reversed(done):
                    self._undo(undo)
                return
            done.append(self._commit(task, nodes))
            starts.append(Start(task.task_id, self._names(nodes), self._late(task)))
        self.decisions.extend(starts)

    # -- reservation (EASY head) ------------------------------------------------------

    def _reserve_head(self, task: PendingTask) -> None:
        """Earliest time and specific nodes where ``task`` fits as running work ends."""
        t = self.table
        now = self.now
        cpus, gpus, memory, count, exclusive = task.shape
        after_now = math.nextafter(now, math.inf)
        events: list[tuple[float, int, float, int, int]] = list(self.started)
        index = t.index
        for r in self.running:
            end = r.expected_end if r.expected_end > now else after_now
            for s in r.slots:
                i = index.get(s.node)
                if i is None:
                    continue
                if s.exclusive:
                    events.append((end, i, t.cap_cpus[i], t.cap_gpus[i], t.cap_memory[i]))
                else:
                    events.append((end, i, s.cpus, s.gpus, s.memory))
        events.sort(key=lambda e: (e[0], e[1]))
        avail: dict[int, list[float]] = {}

        def fits(a: list[float]) -> bool:
            if exclusive:
                return a[3] == 0
            return a[0] >= cpus and a[1] >= gpus and a[2] >= memory

        def state(i: int) -> list[float]:
            a = avail.get(i)
            if a is None:
                a = avail[i] = [t.free_cpus[i], t.free_gpus[i], t.free_memory[i], t.holders[i]]
            return a

        fitting = {i for i in self.candidates if t.usable[i] and fits(state(i))}
        k, n = 0, len(events)
        while k < n:
            at = events[k][0]
            while k < n and events[k][0] == at:
                _, i, c, g, m = events[k]
                k += 1
                if not t.usable[i]:
                    continue
                a = state(i)
                a[0] = min(a[0] + c, t.cap_cpus[i])
                a[1] = min(a[1] + g, t.cap_gpus[i])
                a[2] = min(a[2] + m, t.cap_memory[i])
                a[3] -= 1
                if fits(a):
                    fitting.add(i)
            if len(fitting) >= count:
                fitting -= {i for i in fitting if t.leaves_at[i] < at + task.walltime}
                if len(fitting) >= count:
                    nodes = sorted(fitting)[:count]
                    self.head, self.shadow = task, at
                    for i in nodes:
                        a = avail[i]
                        self.extras[i] = (
                            None
                            if exclusive
                            else (a[0] - cpus, int(a[1]) - gpus, int(a[2]) - memory)
                        )
                    self.decisions.append(
                        Reserve(task.task_id, self._names(nodes), at, self._late(task, at))
                    )
                    return
        # Never fits with what runs now (nodes leaving): no reservation; a later task may
        # become the head.

    # -- preemption -------------------------------------------------------------------

    def _preempt(self, task: PendingTask) -> bool:
        """Preempt ``preempt``-class work for ``task``; reserve its nodes at now + grace."""
        at = self.now + self.config.preempt_grace
        if self.victims is None:
            self.victims = VictimIndex(self.table, self.running)
        choice = self.victims.choose(task, self.extras, at)
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


__all__ = ["decide", "priority_order"]
