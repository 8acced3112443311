"""Placement: the engine's seam to the facility policy (``scheduler.policy.decide``).

Owns the engine's view of one executor as the policy sees it: the executor's capacity as a
one-node cluster, the ready queue (``ReadyQueue``: priority order, O(log n) updates), the
policy's value for each queued task (``PendingTask``) and for each running one
(``RunningTask``), and which preemptions are under way. Each scheduling turn hands the
front of the queue (``WINDOW`` tasks, the only ones a single machine can start soon) to the
pure policy and returns its decisions for the engine to apply.

A task that has already made the policy preempt others waits for its victims to stop and
is not offered again meanwhile, so one arrival never preempts twice; victims in their grace
period are no longer preemptible.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import replace

from hexflow.model import QoS, Resources, TaskSpec
from hexflow.scheduler import ReadyQueue
from hexflow.scheduler.cluster import Cluster, Node, Slot
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
from hexflow.scheduler.policy import decide

WINDOW = 32
_HELD = "\x00held:"  # running entries that hold a stopped victim's share for its preemptor
# A task with no walltime and no timeout: the policy needs an estimate; one year means
# "until it ends" for reservations, and such a task is never refused for its deadline.
UNKNOWN_WALLTIME = 365 * 86400.0


def _special(spec: TaskSpec, deadline: float | None) -> bool:
    """Whether only the full policy may place the task: a deadline (admission, EDF), a class
    that may preempt, a gang (starts whole or not at all) or a whole-machine hold."""
    return deadline is not None or spec.qos.may_preempt or spec.gang is not None or spec.exclusive


# a queued task: its spec, when it was queued, its absolute deadline
_Queued = tuple[TaskSpec, float, float | None]


def _walltime(spec: TaskSpec) -> float | None:
    limit = spec.time_limit
    return limit[0] if limit is not None else None


class Placement:
    def __init__(
        self,
        capacity: Resources,
        config: PolicyConfig | None = None,
        node: str | None = None,
        places_work: bool = False,
        site: str = "site",
        default_walltime: float | None = None,
    ) -> None:
        self.capacity = capacity
        # The executor's backend places work itself (Slurm): a multi-node task is one
        # submission here, counted as one node's share of the capacity.
        self.places_work = places_work
        self.node = node or socket.gethostname() or "local"
        self._nodes = (self.node,)
        self.site = site  # the site this placement places at: a Site of its own cluster
        # what a task without a time limit is taken to need (a site's default_walltime)
        self._unknown_walltime = default_walltime or UNKNOWN_WALLTIME
        self._leaves_at: float | None = None  # a planned outage: work must end by then
        self.cluster = self._cluster()
        self.config = config or PolicyConfig()
        self.queue = ReadyQueue()
        self.free = capacity
        self._pending: dict[str, _Queued] = {}
        self._queued_cpus = 0.0
        self._as_pending: dict[str, PendingTask] = {}
        self._running: dict[str, RunningTask] = {}
        # queued tasks only the full policy handles: a deadline (admission, EDF), or a
        # class that may preempt; and running tasks that may be preempted
        self._special = 0
        self._preemptible = 0
        # preempting task -> its victims still stopping; victim -> its preemptor
        self._awaiting: dict[str, set[str]] = {}
        self._victim_of: dict[str, str] = {}
        self.usage: Mapping[str, float] = {}
        self.gangs: dict[str, int] = {}  # gang -> how many tasks it has (set by the engine)

    def __len__(self) -> int:
        return len(self.queue)

    def _cluster(self) -> Cluster:
        cap = self.capacity
        node = Node(self.node, cap.cpus, cap.gpus, cap.memory, leaves_at=self._leaves_at)
        return Cluster.single_pool([node], site=self.site)

    def leaves_at(self, when: float | None) -> None:
        """The site leaves at ``when`` (a planned outage; None: no end planned): from now
        on every pass goes through the policy, which starts only work that ends by then."""
        if when != self._leaves_at:
            self._leaves_at = when
            self.cluster = self._cluster()

    def queued(self) -> list[str]:
        """The ids of the tasks queued here, in no particular order."""
        return list(self._pending)

    def queued_cpus(self) -> float:
        return max(0.0, round(self._queued_cpus, 9))

    # -- the queue --------------------------------------------------------------------

    def push(
        self, task_id: str, spec: TaskSpec, submit_time: float, deadline: float | None
    ) -> None:
        """Queue a ready task (``deadline``: absolute time, or None)."""
        spec = self._one_node(spec)
        self._pending[task_id] = (spec, submit_time, deadline)
        self._queued_cpus += spec.resources.cpus
        if _special(spec, deadline):
            self._special += 1
        self.queue.push(task_id, spec.resources, spec.qos.priority, deadline)

    def remove(self, task_id: str) -> None:
        """Forget a queued task (cancelled or rejected)."""
        self._forget(task_id)
        self.queue.remove(task_id)
        if self._awaiting.pop(task_id, None) is not None:  # cancelled while it waited
            self._release_held(task_id)

    def _one_node(self, spec: TaskSpec) -> TaskSpec:
        if self.places_work and spec.resources.nodes > 1:
            return replace(spec, resources=replace(spec.resources, nodes=1))
        return spec

    def _forget(self, task_id: str) -> _Queued | None:
        queued = self._pending.pop(task_id, None)
        if queued is not None:
            self._queued_cpus -= queued[0].resources.cpus
        if queued is not None and _special(queued[0], queued[2]):
            self._special -= 1
        self._as_pending.pop(task_id, None)
        return queued

    def _whole_gangs(self, queue: list[PendingTask]) -> list[PendingTask]:
        """The queue without members of gangs that are not all queued yet (a gang starts
        whole: members still waiting for their inputs hold the others back)."""
        queued: dict[str, int] = {}
        for spec, _, _ in self._pending.values():
            if spec.gang is not None:
                queued[spec.gang] = queued.get(spec.gang, 0) + 1
        return [
            t for t in queue if t.gang is None or queued.get(t.gang, 0) >= self.gangs.get(t.gang, 0)
        ]

    def pending_task(self, task_id: str) -> PendingTask:
        """The policy's value for a queued task (built when a full pass first needs it)."""
        task = self._as_pending.get(task_id)
        if task is None:
            spec, submit_time, deadline = self._pending[task_id]
            walltime = _walltime(spec)
            task = self._as_pending[task_id] = PendingTask(
                task_id,
                spec.resources,  # one node: this machine, or one submission (places_work)
                walltime=walltime or self._unknown_walltime,
                qos=spec.qos,
                submit_time=submit_time,
                deadline=deadline,
                best_effort=walltime is None,  # without an estimate, admission cannot judge
                exclusive=spec.exclusive,
                gang=spec.gang,
            )
        return task

    # -- what runs --------------------------------------------------------------------

    def adopt(self, task_id: str, spec: TaskSpec, started: float) -> None:
        """Count a task that already runs (started at ``started``), as a pass would have."""
        spec = self._one_node(spec)
        self._pending[task_id] = (spec, started, None)
        self._queued_cpus += spec.resources.cpus
        if _special(spec, None):
            self._special += 1
        self._run(task_id, started)

    def _run(self, task_id: str, now: float) -> None:
        """A queued task starts now (its queue entry is already gone)."""
        queued = self._forget(task_id)
        assert queued is not None
        spec = queued[0]
        r = spec.resources
        qos = spec.qos
        preemptible = qos is QoS.PREEMPT
        if spec.exclusive:  # the whole machine: what is free now (nothing else runs)
            f = self.free
            slot = Slot(self.node, f.cpus, f.gpus, f.memory, exclusive=True)
        else:
            slot = Slot(self.node, r.cpus, r.gpus, r.memory)
        self._running[task_id] = RunningTask(
            task_id,
            (slot,),
            started=now,
            expected_end=now + (_walltime(spec) or self._unknown_walltime),
            qos=qos,
            preemptible=preemptible,
        )
        self._preemptible += preemptible
        self._account(-slot.cpus, -slot.memory, -slot.gpus)

    def ended(self, task_id: str) -> None:
        """A started task ended (or never ran: a cache hit, a cancel before launch)."""
        running = self._running.pop(task_id, None)
        if running is None:
            return
        self._preemptible -= running.preemptible
        preemptor = self._victim_of.pop(task_id, None)
        victims = self._awaiting.get(preemptor) if preemptor is not None else None
        if victims is None:
            slot = running.slots[0]
            self._account(slot.cpus, slot.memory, slot.gpus)
            return
        assert preemptor is not None
        victims.discard(task_id)
        if victims:
            # Others still stopping: what this victim held stays held for its preemptor,
            # so that no other task (the victim itself, requeued) takes it meanwhile.
            held = f"{_HELD}{task_id}"
            self._running[held] = RunningTask(
                held, running.slots, running.started, running.expected_end, running.qos, False
            )
            self._victim_of[held] = preemptor
            return
        del self._awaiting[preemptor]  # the preemptor is offered to the policy again
        self._release_held(preemptor)
        slot = running.slots[0]
        self._account(slot.cpus, slot.memory, slot.gpus)

    def _release_held(self, preemptor: str) -> None:
        for held in [
            t for t, p in self._victim_of.items() if p == preemptor and t.startswith(_HELD)
        ]:
            del self._victim_of[held]
            slot = self._running.pop(held).slots[0]
            self._account(slot.cpus, slot.memory, slot.gpus)

    def _account(self, cpus: float, memory: int, gpus: int) -> None:
        # Rounded: fractional cpus (0.1 + 0.95 + 0.95) must add up to the capacity exactly.
        free = self.free
        self.free = Resources(
            cpus=max(round(free.cpus + cpus, 9), 0.0),
            memory=max(free.memory + memory, 0),
            gpus=max(free.gpus + gpus, 0),
        )

    def running(self) -> list[RunningTask]:
        return list(self._running.values())

    # -- a pass -----------------------------------------------------------------------

    def worth_a_pass(self) -> bool:
        """Whether a pass may decide anything: something fits, or someone may preempt."""
        if not self._pending:
            return False
        if self.free.cpus >= self.queue.smallest_cpus():
            return True
        return bool(self._special and self._preemptible and self.config.preemption)

    def decide(self, now: float, window: int = WINDOW) -> list[Decision]:
        """The policy's decisions for the queue, now; started tasks count as running.

        Fast path: while no queued task has a deadline or may preempt, the longest prefix
        of the queue that fits starts at once (any order-respecting policy starts it); the
        policy proper runs only when room is left after the first task that does not fit
        (EASY backfilling around it). Otherwise the front of the queue (``window`` tasks)
        goes through the policy. Preemptions are recorded here: the victims stop being
        preemptible, and the preemptor waits for them without being offered again.
        """
        decisions: list[Decision] = []
        if not self._special and self._leaves_at is None:
            started, _ = self.queue.place(self.free, strict=True)
            for task_id in started:
                self._run(task_id, now)
                decisions.append(Start(task_id, self._nodes))
            if self.free.cpus < self.queue.smallest_cpus():
                return decisions
        awaiting = self._awaiting
        front = [self.pending_task(t) for t in self.queue.front(window + len(awaiting))]
        queue = [p for p in front if p.task_id not in awaiting][:window]
        if self.gangs:
            queue = self._whole_gangs(queue)
        if not queue:
            return decisions
        running = self._running
        if self._victim_of:  # victims still stopping are not preemptible again
            view = [
                RunningTask(r.task_id, r.slots, r.started, r.expected_end, r.qos, False)
                if r.task_id in self._victim_of
                else r
                for r in running.values()
            ]
        else:
            view = list(running.values())
        victims: list[str] = []
        for d in decide(self.cluster, queue, view, self.usage, now, self.config):
            decisions.append(d)
            if isinstance(d, Start):
                self.queue.remove(d.task_id)
                self._run(d.task_id, now)
            elif isinstance(d, Reject):
                self.remove(d.task_id)
            elif isinstance(d, Preempt):
                victims.append(d.task_id)
            elif isinstance(d, Reserve) and victims:
                awaiting[d.task_id] = set(victims)
                for v in victims:
                    self._victim_of[v] = d.task_id
                victims = []
        return decisions


def absolute_deadline(started_at: float | None, relative: float | None) -> float | None:
    """A task's deadline as a time: seconds after the run started, or None."""
    if relative is None or started_at is None:
        return None
    return started_at + relative


__all__ = ["UNKNOWN_WALLTIME", "WINDOW", "Placement", "absolute_deadline"]
