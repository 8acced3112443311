"""RunService: what the runs API does — submit (idempotent), list, get, cancel, tasks —
always within the projects the caller's credential reaches.

Submission order: read and check the workflow (a bad document reserves nothing), then
store the ``Idempotency-Key``, the run and its audit entry in one transaction (committed
before the answer, with other requests': ``store.group_commit``), then queue the run on
the RunManager. A retry with the same key and request gets the same run; with another
request, 422. A key is never stored without its run, except by older servers: such a
reservation is 409 for ``STALE_RESERVATION`` seconds, then taken over.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from hexflow.errors import Conflict, Forbidden, NotFound, ServiceError
from hexflow.flow.runtime import new_run_id
from hexflow.model import RunRecord, RunState, TaskRecord, TaskState
from hexflow.model.access import Scope
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.manager import RunManager
from hexflow.service.pages import decode_cursor, encode_cursor
from hexflow.service.workflow_body import parse_params, read_workflow
from hexflow.store.group_commit import KeyRow
from hexflow.store.service_db import ServiceDb
from hexflow.store.service_log import IDEMPOTENCY_TTL

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
STALE_RESERVATION = 30.0  # seconds after which a reservation without its run is taken over
INLINE_PARSE_BYTES = 64 << 10  # larger documents are parsed off the event loop


def _no_run(run_id: str) -> NotFound:
    return NotFound(
        f"no run {run_id!r}",
        hint="GET /api/v1/runs lists the runs you can see (give the whole id)",
        run=run_id,
    )


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise ServiceError(
            "bad Idempotency-Key header",
            hint="use 1 to 255 printable ASCII characters without spaces, e.g. a UUID",
            status=422,
            field="Idempotency-Key",
        )


@dataclass(frozen=True)
class Submitted:
    run: RunRecord
    replayed: bool  # True: an earlier request with the same Idempotency-Key created it
    counts: dict[str, int] | None = None  # task counts by state as created (None: replayed)


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
    async def submit(
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
        """On the caller's event loop: checking and parsing are CPU work (a large document
        is parsed on a worker thread), then it waits for the group commit, on no thread."""
        audited = self._audit.action_async(who.name, "run.submit", project=project, source=source)
        async with audited as note:
            project = project or who.default_project(Scope.SUBMIT)
            note.project = project
            who.check_project(project, Scope.SUBMIT)
            read = functools.partial(
                read_workflow,
                body,
                content_type,
                parse_params(params),
                max_bytes=self._max_body,
                allow_python=self._allow_python,
            )
            doc = await asyncio.to_thread(read) if len(body) > INLINE_PARSE_BYTES else read()
            note.target = doc.name
            run_id = new_run_id()
            key: KeyRow | None = None
            fingerprint = ""
            if idempotency_key is not None:
                _check_key(idempotency_key)
                fingerprint = hashlib.sha256(f"{project}\0{doc.fingerprint}".encode()).hexdigest()
                key = KeyRow(who.name, idempotency_key, fingerprint, run_id, project, self._now())
            for _ in range(3):
                run, tasks = self._manager.plan(
                    doc.name, doc.specs, run_id=run_id, project=project, user=who.name
                )
                # The key, the run and the "ok" entry of the audit log: one transaction,
                # group-committed with other requests'. A key already stored fails it.
                ok = self._audit.row(
                    who.name, "run.submit", replace(note, target=run_id), source=source, status=201
                )
                try:
                    await asyncio.wrap_future(
                        self._manager.persist(run, tasks, key=key, audit=(ok,))
                    )
                except Conflict:
                    if idempotency_key is None:
                        raise
                    earlier, key, run_id = await asyncio.to_thread(
                        self._after_conflict, who, idempotency_key, fingerprint, run_id, project
                    )
                    if earlier is not None:
                        note.target, note.detail, note.status = earlier.id, "replayed", 201
                        return Submitted(earlier, replayed=True)
                    continue
                note.target, note.status, note.recorded = run.id, 201, True
                counts = dict(Counter(t.state.value for t in tasks))
                return Submitted(run, replayed=False, counts=counts)
            raise ServiceError(
                "a request with this Idempotency-Key is still being processed",
                hint="retry in a few seconds",
                status=409,
            )

    def _after_conflict(
        self, who: Principal, key: str, fingerprint: str, run_id: str, project: str
    ) -> tuple[RunRecord | None, KeyRow | None, str]:
        """The key (or the run id) was stored already: (the run to answer with, or None;
        then the key row to store with the run, and the id of the run to create)."""
        now = self._now()
        held = self._db.log.reservation(who.name, key)
        if held is None:  # no key: the run id was taken, by a concurrent take-over
            raced = self._db.runs.get_run(run_id, [project])
            if raced is not None:
                return raced, None, run_id
            return None, KeyRow(who.name, key, fingerprint, run_id, project, now), run_id
        if now - held.created_at >= IDEMPOTENCY_TTL:  # expired, not yet purged
            self._db.log.forget(who.name, key, held.created_at)
            return None, KeyRow(who.name, key, fingerprint, run_id, project, now), run_id
        if held.fingerprint != fingerprint:
            raise ServiceError(
                "this Idempotency-Key was used for a different request",
                hint="use a new key for a new submission",
                status=422,
                field="Idempotency-Key",
            )
        run = self._db.runs.get_run(held.run_id, [held.project])
        if run is not None:
            return run, None, run.id
        if now - held.created_at < STALE_RESERVATION:
            raise ServiceError(
                "a request with this Idempotency-Key is still being processed",
                hint="retry in a few seconds",
                status=409,
            )
        # A key stored without its run (by a server of an older version that died between
        # the two): this retry creates the run, under the reserved id. The key row is
        # there already; a duplicate id fails, so nothing doubles.
        return None, None, held.run_id

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
            raise _no_run(run_id)
        if run.project not in who.projects(needed):
            raise Forbidden(
                f"you may not {needed.value} in project {run.project!r}",
                hint="ask a project administrator for another role",
                project=run.project,
            )
        return run

    def task_counts(self, run_id: str) -> dict[str, int]:
        return self._db.runs.task_counts(run_id)

    def status(self, who: Principal, run_id: str) -> tuple[RunRecord, dict[str, int]]:
        """``get`` with the run's task counts by state, in one database round of reads."""
        who.require_scope(Scope.READ)
        found = self._db.runs.get_run_with_counts(run_id, who.projects(Scope.READ))
        if found is None:
            raise _no_run(run_id)
        return found

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
