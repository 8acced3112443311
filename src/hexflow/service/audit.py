"""The audit trail of service mode: every mutating request, allowed or not, is recorded
(who, project, action, target, time, outcome, status, source address), and read back by
project administrators and site administrators (the ``admin`` scope)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from hexflow.errors import Forbidden, HexflowError
from hexflow.model.access import AuditEntry, Scope
from hexflow.service.auth import Principal
from hexflow.service.errors import outcome_of, status_of
from hexflow.service.pages import decode_cursor, encode_cursor
from hexflow.store.group_commit import AuditRow, Writes
from hexflow.store.service_db import ServiceDb


@dataclass
class AuditNote:
    """What the audited block learns while it runs (the project, the object, a remark)."""

    project: str | None = None
    target: str = ""
    detail: str | None = None
    status: int | None = None
    # The block wrote its own ``ok`` entry, in its transaction (``Audit.row``).
    recorded: bool = False


class Audit:
    def __init__(self, db: ServiceDb, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = clock

    @contextmanager
    def action(
        self,
        actor: str,
        action: str,
        *,
        project: str | None = None,
        target: str = "",
        source: str | None = None,
    ) -> Iterator[AuditNote]:
        """Record the block's outcome: ``ok``, or ``denied``/``error`` with the message."""
        note = AuditNote(project=project, target=target)
        try:
            yield note
        except HexflowError as exc:
            self._write(self._failed(actor, action, note, source, exc)).result()
            raise
        if not note.recorded:
            row = self.row(actor, action, note, "ok", source, note.status, note.detail)
            self._write(row).result()

    @asynccontextmanager
    async def action_async(
        self,
        actor: str,
        action: str,
        *,
        project: str | None = None,
        target: str = "",
        source: str | None = None,
    ) -> AsyncIterator[AuditNote]:
        """``action`` for a coroutine: the entry is written without blocking its loop."""
        note = AuditNote(project=project, target=target)
        try:
            yield note
        except HexflowError as exc:
            await asyncio.wrap_future(self._write(self._failed(actor, action, note, source, exc)))
            raise
        if not note.recorded:
            row = self.row(actor, action, note, "ok", source, note.status, note.detail)
            await asyncio.wrap_future(self._write(row))

    def _failed(
        self, actor: str, action: str, note: AuditNote, source: str | None, exc: HexflowError
    ) -> AuditRow:
        return self.row(actor, action, note, outcome_of(exc), source, status_of(exc), exc.message)

    def _write(self, row: AuditRow) -> Future[None]:
        return self._db.writer.submit(Writes(audit=(row,)))

    def record(
        self,
        actor: str,
        action: str,
        note: AuditNote,
        outcome: str,
        source: str | None,
        status: int | None,
        detail: str | None,
    ) -> None:
        self._write(self.row(actor, action, note, outcome, source, status, detail)).result()

    def row(
        self,
        actor: str,
        action: str,
        note: AuditNote,
        outcome: str = "ok",
        source: str | None = None,
        status: int | None = None,
        detail: str | None = None,
    ) -> AuditRow:
        """The entry ``record`` would write, for a block that writes it with its own rows
        (then ``note.recorded``): the entry is committed if and only if they are."""
        return AuditRow(
            at=self._now(),
            actor=actor,
            project=note.project,
            action=action,
            target=_printable(note.target),
            outcome=outcome,
            status=status,
            source=source,
            detail=None if detail is None else _printable(detail),
        )

    def entries(
        self,
        who: Principal,
        *,
        project: str | None,
        actor: str | None,
        action: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[AuditEntry], str | None]:
        """Site admins see everything; project admins their projects' entries."""
        who.require_scope(Scope.ADMIN)
        visible: set[str] | None = who.projects(Scope.ADMIN)
        if who.user.is_admin and who.bound_project is None:
            visible = None  # a site administrator's unbound credential sees everything
        if visible is not None and not visible:
            raise Forbidden(
                "reading the audit log needs the admin role in a project, or a site administrator",
                hint="ask a project administrator",
            )
        if project is not None and visible is not None:
            who.check_project(project, Scope.ADMIN)
        before = decode_cursor(cursor, (int,))[0] if cursor else None
        items = self._db.log.entries(
            projects=visible,
            project=project,
            actor=actor,
            action=action,
            before_id=before,
            limit=limit,
        )
        more = len(items) == limit
        return items, encode_cursor(items[-1].id) if items and more else None


def _printable(text: str) -> str:
    """``text`` without NUL bytes, which a caller may send (in a path) and PostgreSQL
    refuses in text columns: the entry is written, the NUL shown as ``\\0``."""
    return text.replace("\0", "\\0") if "\0" in text else text
