"""RunService: what the runs API does — submit (idempotent), list, get, cancel, tasks —
always within the projects the caller's credential reaches.

Submission order: read and check the workflow (a bad document reserves nothing), reserve
the ``Idempotency-Key`` for a new run id, create the run (persisted before the answer),
then queue it on the RunManager. A retry with the same key and request gets the same run;
with another request, 422; while the first is still being created, 409.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from hexflow.errors import Forbidden, NotFound, ServiceError
from hexflow.flow.runtime import new_run_id
from hexflow.model import RunRecord, RunState, TaskRecord, TaskState
from hexflow.model.access import Scope
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.manager import RunManager
from hexflow.service.pages import decode_cursor, encode_cursor
from hexflow.service.workflow_body import parse_params, read_workflow
from hexflow.store.service_db import ServiceDb

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
STALE_RESERVATION = 30.0  # seconds after which a reservation without its run is taken over


@dataclass(frozen=True)
class Submitted:
    run: RunRecord
    replayed: bool  # True: an earlier request with the same Idempotency-Key created it


class RunService:
    def __init__(
        self,
        db: ServiceDb,
        manager: RunManager,
        audit: Audit,
        *,
        max_body_bytes: int,
        allow_python: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._manager = manager
        self._audit = audit
        self._max_body = max_body_bytes
        self._allow_python = allow_python
        self._now = clock

    # ------------------------------------------------------------------ submit
    def submit(
        self,
        who: Principal,
        *,
        body: bytes,
        content_type: str | None,
        params: list[str],
        project: str | None,
        idempotency_key: str | None,
        source: str | None,
    ) -> Submitted:
        with self._audit.action(who.name, "run.submit", project=project, source=source) as note:
            project = project or who.default_project(Scope.SUBMIT)
            note.project = project
            who.check_project(project, Scope.SUBMIT)
            doc = read_workflow(
                body,
                content_type,
                parse_params(params),
                max_bytes=self._max_body,
                allow_python=self._allow_python,
            )
            note.target = doc.name
            run_id = new_run_id()
            if idempotency_key is not None:
                fingerprint = hashlib.sha256(f"{project}\0{doc.fingerprint}".encode()).hexdigest()
                earlier, run_id = self._reserve(who, idempotency_key, fingerprint, run_id, project)
                if earlier is not None:
                    note.target, note.detail, note.status = earlier.id, "replayed", 201
                    return Submitted(earlier, replayed=True)
            try:
                run = self._manager.create(
                    doc.name, doc.specs, run_id=run_id, project=project, user=who.name
                )
            except BaseException:
                if idempotency_key is not None:
                    raced = self._db.runs.get_run(run_id, [project])
                    if raced is not None:  # a concurrent take-over created it: same run
                        note.target, note.detail, note.status = raced.id, "replayed", 201
                        return Submitted(raced, replayed=True)
                    self._db.log.release(who.name, idempotency_key, run_id)
                raise
            note.target, note.status = run.id, 201
            return Submitted(run, replayed=False)

    def _reserve(
        self, who: Principal, key: str, fingerprint: str, run_id: str, project: str
    ) -> tuple[RunRecord | None, str]:
        """(the run the key created before, or None; the id of the run to create now)."""
        if not _KEY.match(key):
            raise ServiceError(
                "bad Idempotency-Key header",
                hint="use 1 to 255 printable ASCII characters without spaces, e.g. a UUID",
                status=422,
                field="Idempotency-Key",
            )
        now = self._now()
        held = self._db.log.reserve(
            who.name, key, fingerprint=fingerprint, run_id=run_id, project=project, now=now
        )
        if held is None:
            return None, run_id  # reserved now
        if held.fingerprint != fingerprint:
            raise ServiceError(
                "this Idempotency-Key was used for a different request",
                hint="use a new key for a new submission",
                status=422,
                field="Idempotency-Key",
            )
        run = self._db.runs.get_run(held.run_id, [held.project])
        if run is not None:
            return run, run.id
        if now - held.created_at < STALE_RESERVATION:
            raise ServiceError(
                "a request with this Idempotency-Key is still being processed",
                hint="retry in a few seconds",
                status=409,
            )
        # The first request died between reserving the key and creating the run: this
        # retry creates it, under the reserved id (a duplicate id fails; nothing doubles).
        return None, held.run_id

    # ------------------------------------------------------------------ read
    def list_runs(
        self,
        who: Principal,
        *,
        project: str | None,
        state: RunState | None,
        name: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[RunRecord], str | None]:
        who.require_scope(Scope.READ)
        projects = who.projects(Scope.READ)
        if project is not None:
            who.check_project(project, Scope.READ)
            projects = {project}
        after = decode_cursor(cursor, (float, str)) if cursor else None
        found = self._db.runs.list_runs(
            projects,
            state=state.value if state else None,
            name=name,
            after=(after[0], after[1]) if after else None,
            limit=limit,
        )
        last = found[-1] if len(found) == limit else None
        return found, encode_cursor(last.created_at, last.id) if last else None

    def get(self, who: Principal, run_id: str, needed: Scope = Scope.READ) -> RunRecord:
        who.require_scope(needed)
        run = self._db.runs.get_run(run_id, who.projects(Scope.READ))
        if run is None:
            raise NotFound(
                f"no run {run_id!r}",
                hint="GET /api/v1/runs lists the runs you can see (give the whole id)",
                run=run_id,
            )
        if run.project not in who.projects(needed):
            raise Forbidden(
                f"you may not {needed.value} in project {run.project!r}",
                hint="ask a project administrator for another role",
                project=run.project,
            )
        return run

    def task_counts(self, run_id: str) -> dict[str, int]:
        return self._db.runs.task_counts(run_id)

    def tasks(
        self,
        who: Principal,
        run_id: str,
        *,
        state: TaskState | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[TaskRecord], str | None]:
        run = self.get(who, run_id)
        after = decode_cursor(cursor, (int,))[0] if cursor else None
        rows = self._db.runs.list_tasks(
            run.id, state=state.value if state else None, after_seq=after, limit=limit
        )
        next_cursor = encode_cursor(rows[-1][0]) if len(rows) == limit else None
        return [task for _, task in rows], next_cursor

    # ------------------------------------------------------------------ cancel
    def cancel(self, who: Principal, run_id: str, *, source: str | None) -> RunRecord:
        with self._audit.action(who.name, "run.cancel", target=run_id, source=source) as note:
            run = self._db.runs.get_run(run_id, who.projects(Scope.READ))
            note.project = run.project if run else None
            run = self.get(who, run_id, Scope.SUBMIT)
            if run.state.terminal:
                note.detail = f"already {run.state.value}"
                return run
            result = self._manager.cancel(run.id)
            note.detail = str(result.get("mode"))
            found = self._db.runs.get_run(run.id, [run.project or ""])
            return found or run
