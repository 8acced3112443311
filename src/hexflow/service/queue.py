"""The waiting work of a caller's active runs in priority order, each task with the
scheduler's reason for waiting (``engine.queueview``), as ``hexflow queue`` shows it."""

from __future__ import annotations

from typing import Any

from hexflow.engine.queueview import number, run_queue
from hexflow.model import RunRecord, RunState, TaskRecord
from hexflow.model.access import Scope
from hexflow.service.auth import Principal
from hexflow.service.runs import RunService
from hexflow.store.service_db import ServiceDb

MAX_RUNS = 50


def queue_rows(
    db: ServiceDb, runs: RunService, who: Principal, *, run_id: str | None, limit: int, now: float
) -> list[dict[str, Any]]:
    if run_id is not None:
        chosen = [runs.get(who, run_id)]
    else:
        who.require_scope(Scope.READ)
        projects = who.projects(Scope.READ)
        chosen = [
            r
            for state in (RunState.RUNNING, RunState.PENDING)
            for r in db.runs.list_runs(projects, state=state.value, limit=MAX_RUNS)
        ]
    rows = []
    for run in sorted(chosen, key=lambda r: r.created_at):
        rows.extend(run_queue(run, _all_tasks(db, run), now))
    return [r.as_json() for r in number(rows)[:limit]]


def _all_tasks(db: ServiceDb, run: RunRecord) -> list[TaskRecord]:
    out: list[TaskRecord] = []
    after: int | None = None
    while True:
        page = db.runs.list_tasks(run.id, after_seq=after, limit=5000)
        out.extend(task for _, task in page)
        if len(page) < 5000:
            return out
        after = page[-1][0]
