"""Replay of a batch log through the facility policy, on pools of nodes, in virtual time.

The loop the facility simulator uses. Events are arrivals, completions and the changes of
an elastic plan; all events of one instant are applied, then each pool whose state changed
gets one decision pass from its ``PoolPolicy`` (``sim.seam``: fed by events, so an
incremental policy state can be plugged in; the default runs ``scheduler.policy.decide``
on the full inputs). Jobs become
``PendingTask``s (``sim.tasks``); each runs in the pool its QoS is routed to. Nothing here
reads the clock or does I/O. No running task is preemptible and none has a deadline, so a
pass over a pool with no free cpu on an UP node is skipped: it could start nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from hexflow.errors import SpecError
from hexflow.model import QoS
from hexflow.scheduler.cluster import Node, NodeState
from hexflow.scheduler.decisions import PendingTask, Reject, Reserve, Start
from hexflow.scheduler.elastic import Plan, apply_resize, next_change, resize, targets
from hexflow.scheduler.swf import SwfJob
from hexflow.sim.metrics import BOUNDED_SLOWDOWN_TAU, JobRow, ReplayResult, summarize
from hexflow.sim.pools import PoolState
from hexflow.sim.seam import PolicyFactory, stateless
from hexflow.sim.tasks import DEFAULT_QOS_BY_QUEUE, nodes_for, to_task

DEFAULT_POOL = "batch"
FAIR_SHARE_HALF_LIFE = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class PoolReport:
    """A pool over the replay: its size range, node-hours held, and the share of its
    cores that running work held (exclusive work holds whole nodes)."""

    name: str
    fewest_nodes: int
    most_nodes: int
    node_hours: float
    utilization: float
    jobs: int
    mean_wait: float

    def metrics(self) -> dict[str, float | int]:
        return {
            "nodes_min": self.fewest_nodes,
            "nodes_max": self.most_nodes,
            "node_hours": round(self.node_hours, 1),
            "utilization": round(self.utilization, 4),
            "jobs": self.jobs,
            "mean_wait_s": round(self.mean_wait, 3),
        }


@dataclass(frozen=True, slots=True)
class FacilityResult:
    summary: ReplayResult
    pools: tuple[PoolReport, ...]
    cores_per_node: int
    passes: int  # decision passes run (skipped ones not counted)
    reservations: int  # Reserve decisions seen (informational: the next pass decides anew)

    @property
    def jobs(self) -> tuple[JobRow, ...]:
        return self.summary.jobs

    def metrics(self) -> dict[str, object]:
        """The summary figures with the machine's shape and each pool's, JSON-ready."""
        return {
            **self.summary.metrics(),
            "scheduler": "facility",
            "cores_per_node": self.cores_per_node,
            "passes": self.passes,
            "pools": {p.name: p.metrics() for p in self.pools},
        }


class _Usage(dict[str, float]):
    """Fair-share usage, decayed with a half-life. The policy only compares projects, and
    decay scales all of them alike, so charges are stored inflated by ``2**(t / half_life)``
    instead of decaying every entry at every pass (rescaled before it could overflow)."""

    def __init__(self, half_life: float) -> None:
        super().__init__()
        self.half_life = half_life
        self.origin = 0.0

    def charge(self, project: str, amount: float, now: float) -> None:
        exponent = (now - self.origin) / self.half_life
        if exponent > 512:
            scale = 0.5**exponent
            for key in self:
                self[key] *= scale
            self.origin, exponent = now, 0.0
        self[project] = self.get(project, 0.0) + amount * 2.0**exponent


def replay_facility(
    jobs: Iterable[SwfJob],
    nodes: int,
    cores_per_node: int = 1,
    *,
    plan: Plan | None = None,
    clock_origin: float = 0.0,
    policy: PolicyFactory | None = None,
    qos_by_queue: Mapping[int, QoS] = DEFAULT_QOS_BY_QUEUE,
    half_life: float = FAIR_SHARE_HALF_LIFE,
    tau: float = BOUNDED_SLOWDOWN_TAU,
) -> FacilityResult:
    """Replay ``jobs`` on ``nodes`` nodes of ``cores_per_node`` cores each.

    ``plan``: an elastic plan over these nodes (its pools, their sizes by time of day, and
    where each QoS runs); without one, every node is in one pool, ``batch``.
    ``clock_origin``: the local wall-clock time of trace time 0, to read the plan
    (``SwfTrace.clock_origin``). ``policy``: makes each pool's ``PoolPolicy`` (default
    ``seam.stateless()``: ``decide`` with the default ``PolicyConfig``).
    """
    if nodes <= 0:
        raise SpecError(f"the machine needs at least one node, got {nodes}", field="nodes")
    if cores_per_node <= 0:
        raise SpecError(
            f"a node needs at least one core, got {cores_per_node}", field="cores_per_node"
        )
    if plan is not None and plan.total != nodes:
        raise SpecError(
            f"the plan is for {plan.total} nodes but the machine has {nodes}", field="plan"
        )
    return _Replay(nodes, cores_per_node, plan, clock_origin, policy, half_life).run(
        jobs, qos_by_queue, tau
    )


class _Replay:
    def __init__(
        self,
        nodes: int,
        cores: int,
        plan: Plan | None,
        origin: float,
        policy: PolicyFactory | None,
        half_life: float,
    ) -> None:
        self.cores, self.plan, self.origin = cores, plan, origin
        self.factory = policy or stateless()
        self.usage = _Usage(half_life)
        width = len(str(nodes))
        # nodes in no pool, kept in name order
        self.spare = [Node(f"n{i:0{width}d}", float(cores)) for i in range(1, nodes + 1)]
        self.pools: dict[str, PoolState] = {}
        self.passes = self.reservations = self.rejected = 0
        self.rows: dict[str, JobRow] = {}
        self.by_task: dict[str, SwfJob] = {}
        self.project: dict[str, str] = {}  # of each started task, charged when it ends

    def _make_pools(self, now: float) -> None:
        """Every node in one pool, or the plan's pools at their sizes at ``now``."""
        if self.plan is None:
            want = {DEFAULT_POOL: len(self.spare)}
        else:
            want = targets(self.plan, self.origin + now)
        for name, count in want.items():
            given, self.spare = self.spare[:count], self.spare[count:]
            self.pools[name] = PoolState(name, given, self.factory)
        for pool in self.pools.values():
            pool.set_usage(self.usage)

    def _route(self, task: PendingTask) -> str:
        return self.plan.pool_for(task.qos) if self.plan else DEFAULT_POOL

    def run(
        self, jobs: Iterable[SwfJob], qos_by_queue: Mapping[int, QoS], tau: float
    ) -> FacilityResult:
        total = len(self.spare)
        accepted: list[tuple[SwfJob, PendingTask, str]] = []
        skipped = 0
        for job in jobs:
            if job.procs <= 0 or job.run_time < 0:
                skipped += 1
                continue
            task = to_task(job, self.cores, qos_by_queue)
            pool = self._route(task)
            largest = self.plan.most(pool) if self.plan else total
            if nodes_for(job.procs, self.cores) > largest:
                self.rejected += 1
            else:
                accepted.append((job, task, pool))
        accepted.sort(key=lambda item: item[0].submit)  # stable: ties keep file order
        if len({job.job_id for job, _, _ in accepted}) != len(accepted):
            raise SpecError("the log holds duplicate job ids", hint="job ids must be unique")
        self.by_task = {task.task_id: job for job, task, _ in accepted}
        self._make_pools(accepted[0][0].submit if accepted else 0.0)
        self._loop(accepted)
        rows = [self.rows[task.task_id] for _, task, _ in accepted if task.task_id in self.rows]
        runs = [self.by_task[str(row.job_id)].run_time for row in rows]
        summary = summarize("facility", self.cores * total, rows, runs, self.rejected,
                            skipped, tau)  # fmt: skip
        return FacilityResult(summary, self._reports(summary), self.cores, self.passes,
                              self.reservations)  # fmt: skip

    def _loop(self, accepted: list[tuple[SwfJob, PendingTask, str]]) -> None:
        done: list[tuple[float, int, str, str]] = []  # (end, sequence, task id, pool)
        sequence = 0
        nxt, total = 0, len(accepted)
        last = accepted[0][0].submit if accepted else 0.0
        plan_at = self._next_plan(last)
        pools = list(self.pools.values())
        while nxt < total or done or any(p.queue for p in pools):
            now = min(
                accepted[nxt][0].submit if nxt < total else math.inf,
                done[0][0] if done else math.inf,
                plan_at,
            )
            if now == math.inf:
                waiting = sum(len(p.queue) for p in pools)
                raise AssertionError(f"{waiting} jobs can never start")  # a replay bug
            for pool in pools:
                pool.node_seconds += len(pool.nodes) * (now - last)
            last = now
            settle = charged = False
            while done and done[0][0] == now:
                _, _, task_id, name = heapq.heappop(done)
                spent, freed = self.pools[name].finish(task_id, now)
                self.usage.charge(self.project[task_id], spent, now)
                settle, charged = settle or freed, True
            if charged:
                for pool in pools:
                    pool.set_usage(self.usage)
            while nxt < total and accepted[nxt][0].submit == now:
                _, task, name = accepted[nxt]
                self.pools[name].enqueue(task)
                nxt += 1
            if now >= plan_at or (settle and self.plan is not None):
                self._rebalance(now)
                plan_at = self._next_plan(now)
            for pool in pools:
                if not (pool.dirty and pool.queue):
                    continue
                pool.dirty = False
                if pool.free_up <= 0:
                    continue
                for task_id, end in self._pass(pool, now):
                    sequence += 1
                    heapq.heappush(done, (end, sequence, task_id, pool.name))

    def _pass(self, pool: PoolState, now: float) -> list[tuple[str, float]]:
        """One decision pass over ``pool``; the (task id, end) of the tasks it started."""
        self.passes += 1
        started: list[tuple[str, float]] = []
        for decision in pool.policy.decide(now):
            if isinstance(decision, Start):
                task = pool.start(decision.task_id, decision.nodes, now)
                job = self.by_task[task.task_id]
                end = now + job.run_time
                self.project[task.task_id] = task.project
                self.rows[task.task_id] = JobRow(
                    job.job_id, job.submit, now, end, job.procs, pool.name, decision.nodes
                )
                started.append((task.task_id, end))
            elif isinstance(decision, Reserve):
                self.reservations += 1
            elif isinstance(decision, Reject):
                pool.reject(decision.task_id)
                self.rejected += 1
            else:  # no running task is preemptible: a policy bug
                raise AssertionError(f"unexpected decision {decision!r}")
        return started

    def _next_plan(self, now: float) -> float:
        if self.plan is None:
            return math.inf
        return next_change(self.plan, self.origin + now) - self.origin

    def _rebalance(self, now: float) -> None:
        """Resize every pool toward the plan's targets: shrink first (drained nodes join
        the spare ones once idle), then grow from the spare nodes, in plan order."""
        assert self.plan is not None
        want = targets(self.plan, self.origin + now)
        for name, pool in self.pools.items():
            nodes = list(pool.nodes.values())
            change = resize(nodes, list(pool.running.values()), want[name], now)
            if change.stop:  # resize never stops work without force
                raise AssertionError(f"resize of {name} would stop {change.stop}")
            released = [pool.nodes[n] for n in change.release]
            if change.release or change.drain or change.restore:
                pool.set_nodes(apply_resize(nodes, change))
            self.spare.extend(replace(n, state=NodeState.UP, leaves_at=None) for n in released)
            pool.deficit = change.grow
        self.spare.sort(key=lambda n: n.name)
        for pool in self.pools.values():
            if pool.deficit and self.spare:
                given, self.spare = self.spare[: pool.deficit], self.spare[pool.deficit :]
                pool.deficit -= len(given)
                pool.set_nodes([*pool.nodes.values(), *given])

    def _reports(self, summary: ReplayResult) -> tuple[PoolReport, ...]:
        span = summary.makespan
        reports = []
        for pool in self.pools.values():
            capacity = pool.node_seconds * self.cores
            reports.append(
                PoolReport(
                    name=pool.name,
                    fewest_nodes=pool.fewest,
                    most_nodes=pool.most,
                    node_hours=pool.node_seconds / 3600.0,
                    utilization=pool.busy_core_seconds / capacity if capacity and span else 0.0,
                    jobs=pool.started,
                    mean_wait=pool.wait_sum / pool.started if pool.started else 0.0,
                )
            )
        return tuple(reports)


__all__ = [
    "DEFAULT_POOL",
    "FAIR_SHARE_HALF_LIFE",
    "FacilityResult",
    "PoolReport",
    "replay_facility",
]
