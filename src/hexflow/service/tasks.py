"""TaskService: one task of a run — get it, cancel it, read its result and its logs — always
within the projects the caller's credential reaches (through ``RunService.get``).

Logs are the files the executor wrote (``<home>/runs/<run>/logs/<task>.<attempt>.out|err``);
reads are bounded (``tail`` bytes from the end) so a huge log cannot exhaust the server.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow.errors import NotFound, ServiceError
from hexflow.flow.runtime import log_paths
from hexflow.model import RunRecord, TaskRecord
from hexflow.model.access import Scope
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.manager import RunManager
from hexflow.service.pages import decode_cursor, encode_cursor
from hexflow.service.runs import RunService
from hexflow.store.service_db import ServiceDb

MAX_TAIL = 4 << 20  # the most log bytes one answer carries per stream


@dataclass(frozen=True)
class LogText:
    text: str
    size: int  # bytes in the file now
    truncated: bool  # only the tail was read


class TaskService:
    def __init__(self, db: ServiceDb, runs: RunService, manager: RunManager, audit: Audit) -> None:
        self._db = db
        self._runs = runs
        self._manager = manager
        self._audit = audit

    def get(
        self, who: Principal, run_id: str, task_id: str, needed: Scope = Scope.READ
    ) -> tuple[RunRecord, TaskRecord]:
        run = self._runs.get(who, run_id, needed)
        task = self._db.runs.get_task(run.id, task_id)
        if task is None:
            raise NotFound(
                f"no task {task_id!r} in run {run.id}",
                hint=f"GET /api/v1/runs/{run.id}/tasks lists them (give the whole task id)",
                run=run.id,
                task=task_id,
            )
        return run, task

    def cancel(
        self, who: Principal, run_id: str, task_id: str, *, source: str | None
    ) -> TaskRecord:
        with self._audit.action(
            who.name, "task.cancel", target=f"{run_id}/{task_id}", source=source
        ) as note:
            visible = self._db.runs.get_run(run_id, who.projects(Scope.READ))
            note.project = visible.project if visible else None
            run, task = self.get(who, run_id, task_id, Scope.SUBMIT)
            if task.state.terminal:
                note.detail = f"already {task.state.value}"
                return task
            result = self._manager.cancel_task(run.id, task.id)
            note.detail = str(result.get("mode"))
            return self._db.runs.get_task(run.id, task.id) or task

    # ------------------------------------------------------------------ logs
    def logs(
        self,
        who: Principal,
        run_id: str,
        task_id: str,
        *,
        attempt: int | None = None,
        tail: int = MAX_TAIL,
    ) -> dict[str, Any]:
        run, task = self.get(who, run_id, task_id)
        return task_logs(run, task, attempt=attempt, tail=tail)

    def run_logs(
        self, who: Principal, run_id: str, *, cursor: str | None, limit: int, tail: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The latest attempt's logs of each task, in creation order, a page at a time."""
        run = self._runs.get(who, run_id)
        after = decode_cursor(cursor, (int,))[0] if cursor else None
        rows = self._db.runs.list_tasks(run.id, after_seq=after, limit=limit)
        items = [task_logs(run, task, tail=tail) for _, task in rows]
        return items, encode_cursor(rows[-1][0]) if len(rows) == limit else None


def task_logs(
    run: RunRecord, task: TaskRecord, *, attempt: int | None = None, tail: int = MAX_TAIL
) -> dict[str, Any]:
    if attempt is not None and not 1 <= attempt <= max(task.attempt, 1):
        raise ServiceError(
            f"task {task.id} has no attempt {attempt} (it has {task.attempt})",
            hint="omit attempt for the latest",
            status=422,
            field="attempt",
        )
    out_path, err_path = log_paths(run, task, attempt)
    out, err = read_tail(out_path, tail), read_tail(err_path, tail)
    return {
        "run_id": run.id,
        "task_id": task.id,
        "attempt": attempt or task.attempt,
        "state": task.state.value,
        "stdout": out.text,
        "stderr": err.text,
        "truncated": out.truncated or err.truncated,
        "traceback": task.traceback,
    }


def read_tail(path: Path, limit: int) -> LogText:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            start = max(0, size - limit)
            f.seek(start)
            data = f.read(limit)
    except FileNotFoundError:
        return LogText("", 0, False)
    return LogText(data.decode(errors="replace"), size, start > 0)


def read_from(path: Path, offset: int, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        return b""


def utf8_decoder() -> codecs.IncrementalDecoder:
    """Decodes a byte stream chunk by chunk, never splitting a character."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace")
