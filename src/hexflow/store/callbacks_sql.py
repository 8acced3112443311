"""Callback URLs of asynchronous invocations and the state of their delivery, in SQL.

A row is ``waiting`` from the call until its invocation ends, then ``due`` (at ``due_at``)
until a POST is answered with 2xx (``delivered``) or it has failed for longer than the
retry window (``abandoned``). Marking rows due is idempotent: an event delivered twice
changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hexflow.model.functions import InvocationState
from hexflow.store.events_schema import invocation_callbacks as cb
from hexflow.store.events_schema import invocations

WAITING, DUE, DELIVERED, ABANDONED = "waiting", "due", "delivered", "abandoned"


@dataclass(frozen=True, slots=True)
class Callback:
    invocation_id: str
    project: str
    url: str
    state: str
    finished_at: float | None
    due_at: float | None
    attempts: int
    last_error: str | None = None
    delivered_at: float | None = None


def _callback(row: Any) -> Callback:
    return Callback(
        invocation_id=row.invocation_id,
        project=row.project,
        url=row.url,
        state=row.state,
        finished_at=row.finished_at,
        due_at=row.due_at,
        attempts=row.attempts,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


def add(conn: Connection, invocation_id: str, project: str, url: str, now: float) -> None:
    conn.execute(
        insert(cb).values(
            invocation_id=invocation_id,
            project=project,
            url=url,
            state=WAITING,
            created_at=now,
            attempts=0,
        )
    )


def waiting(conn: Connection, invocation_ids: Sequence[str]) -> list[str]:
    """Those of ``invocation_ids`` with a callback not yet due (a read: most have none)."""
    found: list[str] = []
    for i in range(0, len(invocation_ids), 500):
        chunk = list(invocation_ids[i : i + 500])
        query = select(cb.c.invocation_id).where(
            cb.c.invocation_id.in_(chunk), cb.c.state == WAITING
        )
        found.extend(k for (k,) in conn.execute(query))
    return found


def mark_due(conn: Connection, invocation_ids: Sequence[str], now: float) -> int:
    """The callbacks of invocations that ended become due now; returns how many did."""
    changed = 0
    for i in range(0, len(invocation_ids), 500):
        chunk = list(invocation_ids[i : i + 500])
        done = conn.execute(
            update(cb)
            .where(cb.c.invocation_id.in_(chunk), cb.c.state == WAITING)
            .values(state=DUE, finished_at=now, due_at=now)
        )
        changed += done.rowcount or 0
    return changed


def any_waiting(conn: Connection) -> bool:
    """Whether some callback still waits for its invocation's end."""
    return (
        conn.execute(select(cb.c.invocation_id).where(cb.c.state == WAITING).limit(1)).first()
        is not None
    )


def sweep(conn: Connection, now: float) -> int:
    """Waiting callbacks whose invocation has ended become due (what the bus consumer would
    have done, had it not seen the end): returns how many did."""
    ended = [s.value for s in InvocationState if s.terminal]
    done = conn.execute(
        update(cb)
        .where(
            cb.c.state == WAITING,
            cb.c.invocation_id.in_(
                select(invocations.c.id).where(
                    invocations.c.id.in_(select(cb.c.invocation_id).where(cb.c.state == WAITING)),
                    invocations.c.state.in_(ended),
                )
            ),
        )
        .values(state=DUE, finished_at=now, due_at=now)
    )
    return done.rowcount or 0


def due(conn: Connection, now: float, limit: int = 100) -> list[Callback]:
    query = (
        select(cb).where(cb.c.state == DUE, cb.c.due_at <= now).order_by(cb.c.due_at).limit(limit)
    )
    return [_callback(r) for r in conn.execute(query)]


def next_due(conn: Connection) -> float | None:
    from sqlalchemy import func

    at = conn.execute(select(func.min(cb.c.due_at)).where(cb.c.state == DUE)).scalar()
    return None if at is None else float(at)


def get(conn: Connection, invocation_id: str) -> Callback | None:
    row = conn.execute(select(cb).where(cb.c.invocation_id == invocation_id)).first()
    return _callback(row) if row else None


def delivered(conn: Connection, invocation_id: str, attempts: int, now: float) -> None:
    conn.execute(
        update(cb)
        .where(cb.c.invocation_id == invocation_id)
        .values(state=DELIVERED, delivered_at=now, attempts=attempts, due_at=None)
    )


def failed(
    conn: Connection, invocation_id: str, attempts: int, error: str, retry_at: float | None
) -> None:
    """A failed attempt: due again at ``retry_at``, or abandoned (None)."""
    conn.execute(
        update(cb)
        .where(cb.c.invocation_id == invocation_id)
        .values(
            state=DUE if retry_at is not None else ABANDONED,
            due_at=retry_at,
            attempts=attempts,
            last_error=error[:1000],
        )
    )
