"""The queue as users see it: every waiting task of the active runs, in priority order,
each with the scheduler's reason for waiting (``hexflow queue``).

Read from the store, not from the engines: for each run that is not over, the run's
executor (recorded by the engine that drives it) becomes the policy's cluster, its READY
tasks the queue and its RUNNING tasks what runs, and ``scheduler.reasons`` explains the
policy's pass over that input. Tasks waiting for upstream tasks say which; tasks in a
retry backoff say until when.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hexflow.engine.lease import owner_alive
from hexflow.engine.placement import Placement, absolute_deadline
from hexflow.model import Resources, RunRecord, TaskRecord, TaskState
from hexflow.scheduler.decisions import PolicyConfig
from hexflow.scheduler.reasons import wait_reasons

S = TaskState


@dataclass(frozen=True, slots=True)
class QueueRow:
    position: int
    run_id: str
    task_id: str
    name: str
    state: str
    qos: str
    resources: Resources
    kind: str  # starting, preempting, reservation, resources, priority, rejected,
    # dependency, retry, not_driven
    reason: str
    at_risk: bool = False
    preemptions: int = 0

    def as_json(self) -> dict[str, Any]:
        r = self.resources
        return {
            "position": self.position,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "name": self.name,
            "state": self.state,
            "qos": self.qos,
            "cpus": r.cpus,
            "gpus": r.gpus,
            "memory": r.memory,
            "walltime": r.walltime,
            "reason_kind": self.kind,
            "reason": self.reason,
            "deadline_at_risk": self.at_risk,
            "preemptions": self.preemptions,
        }


def run_queue(run: RunRecord, records: list[TaskRecord], now: float) -> list[QueueRow]:
    """The waiting tasks of one run, in the order its engine's policy considers them."""
    rows: list[tuple[str, str, str, bool, TaskRecord]] = []  # (task, kind, text, risk, rec)
    by_id = {r.id: r for r in records}
    ready = [r for r in records if r.state is S.READY]
    if ready:
        if not owner_alive(run.owner):
            for rec in ready:
                text = f"not_driven: run {run.id} has no live engine; `hexflow resume {run.id}`"
                rows.append((rec.id, "not_driven", text, False, rec))
        else:
            placement = _placement(run)
            for rec in records:
                if rec.state is S.RUNNING and rec.started_at is not None and not rec.join:
                    placement.adopt(rec.id, rec.spec, rec.started_at)
            for rec in ready:
                deadline = absolute_deadline(run.started_at, rec.spec.deadline)
                placement.push(rec.id, rec.spec, now, deadline)
            queue = [placement.pending_task(t) for t in placement.queue.front(len(ready))]
            for why in wait_reasons(
                placement.cluster, queue, placement.running(), {}, now, placement.config
            ):
                rec = by_id[why.task_id]
                rows.append((why.task_id, why.kind, str(why), why.at_risk, rec))
    for rec in records:
        if rec.state is S.PENDING:
            waits = [d for d in rec.spec.deps if by_id[d].state is not S.SUCCEEDED]
            names = ", ".join(by_id[d].name for d in waits[:3])
            more = f" (+{len(waits) - 3} more)" if len(waits) > 3 else ""
            rows.append((rec.id, "dependency", f"dependency: waits for {names}{more}", False, rec))
        elif rec.state is S.RETRYING:
            left = max((rec.retry_at or now) - now, 0.0)
            text = f"retry: attempt {rec.attempt + 1} after a backoff of {left:.0f} s more"
            rows.append((rec.id, "retry", text, False, rec))
    return [
        QueueRow(
            position=0,
            run_id=run.id,
            task_id=tid,
            name=rec.name,
            state=rec.state.value,
            qos=rec.spec.qos.value,
            resources=rec.spec.resources,
            kind=kind,
            reason=text,
            at_risk=risk,
            preemptions=rec.preemptions,
        )
        for tid, kind, text, risk, rec in rows
    ]


def number(rows: list[QueueRow]) -> list[QueueRow]:
    return [dataclasses.replace(row, position=k) for k, row in enumerate(rows, 1)]


def _placement(run: RunRecord) -> Placement:
    info = run.config.get("executor") or {}
    capacity = Resources(
        cpus=float(info.get("cpus") or 1.0),
        memory=int(info.get("memory") or 0),
        gpus=int(info.get("gpus") or 0),
    )
    fields = {f.name for f in dataclasses.fields(PolicyConfig)}
    policy = PolicyConfig(**{k: v for k, v in (info.get("policy") or {}).items() if k in fields})
    return Placement(capacity, policy, node=info.get("node") or "local")


__all__ = ["QueueRow", "number", "run_queue"]
