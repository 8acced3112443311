"""The durable event log in SQL: append (inside the caller's transaction), read after a
sequence number, consumer offsets.

Order: a reader that has seen ``seq`` N must never later find a smaller ``seq`` appear.
SQLite gives that for free (one writer at a time, numbers assigned inside the write). On
PostgreSQL a sequence hands out numbers before commit, so two transactions could commit out
of order; every transaction that appends events first takes one transaction-level advisory
lock, which makes appends commit in ``seq`` order (the log is the one serialization point,
as SQLite's write lock is).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, or_, select, text, update

from hexflow.model.events import Event, NewEvent
from hexflow.store.events_schema import event_offsets, events

_PG_LOCK = 0x6865786576  # "hexev": the advisory lock of event appends
INSERT_EVENT_SQL = (
    "INSERT INTO events (at, kind, project, subject, data, key) VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_EVENT_IGNORE_SQL = INSERT_EVENT_SQL.replace("INSERT", "INSERT OR IGNORE", 1)

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def event_params(ev: NewEvent) -> tuple[Any, ...]:
    return (ev.at, ev.kind, ev.project, ev.subject, _dumps(ev.data), ev.key)


def append_sqlite(con: sqlite3.Connection, new: Sequence[NewEvent]) -> None:
    """Append on a raw SQLite connection inside its open transaction (the engine's fast path).
    Keyed events already logged are skipped."""
    if any(ev.key is not None for ev in new):
        con.executemany(INSERT_EVENT_IGNORE_SQL, map(event_params, new))
    else:
        con.executemany(INSERT_EVENT_SQL, map(event_params, new))


def append(conn: Connection, new: Sequence[NewEvent], *, numbers: bool = True) -> list[Event]:
    """Append inside the caller's transaction; returns the events logged now, with their
    numbers (a keyed event logged before is skipped and not returned). ``numbers=False``
    returns nothing and spares reading the numbers back (producers that do not need them).

    A batch without keys is one statement (an ``executemany``; SQLAlchemy's
    "insertmanyvalues" batches it and hands the numbers back in the batch's order)."""
    if not new:
        return []
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
    if all(ev.key is None for ev in new):
        rows = [_new_row(ev) for ev in new]
        if not numbers:
            conn.execute(insert(events), rows)
            return []
        numbered = insert(events).returning(events.c.seq, sort_by_parameter_order=True)
        seqs = conn.execute(numbered, rows).scalars().all()
        return [
            Event(int(seq), ev.kind, ev.project, ev.subject, ev.at, ev.data, ev.key)
            for seq, ev in zip(seqs, new, strict=True)
        ]
    out: list[Event] = []
    for ev in new:
        row = _new_row(ev)
        if ev.key is not None:
            stmt: Any
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt = (
                    pg_insert(events)
                    .values(row)
                    .on_conflict_do_nothing(
                        index_elements=["key"], index_where=events.c.key.is_not(None)
                    )
                )
            elif dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                stmt = sqlite_insert(events).values(row).on_conflict_do_nothing()
            else:
                found = conn.execute(select(events.c.seq).where(events.c.key == ev.key)).first()
                stmt = None if found else insert(events).values(row)
            result = conn.execute(stmt.returning(events.c.seq)) if stmt is not None else None
            seq = result.scalar() if result is not None else None
        else:
            seq = conn.execute(insert(events).values(row).returning(events.c.seq)).scalar()
        if seq is not None:
            out.append(Event(int(seq), ev.kind, ev.project, ev.subject, ev.at, ev.data, ev.key))
    return out


def _new_row(ev: NewEvent) -> dict[str, Any]:
    return {
        "at": ev.at,
        "kind": ev.kind,
        "project": ev.project,
        "subject": ev.subject,
        "data": _dumps(ev.data),
        "key": ev.key,
    }


def _event(row: Any) -> Event:
    return Event(
        seq=row.seq,
        kind=row.kind,
        project=row.project,
        subject=row.subject,
        at=row.at,
        data=json.loads(row.data),
        key=row.key,
    )


def read(
    conn: Connection,
    after: int,
    *,
    projects: Collection[str] | None = None,
    limit: int = 500,
) -> list[Event]:
    """Events with ``seq > after``, oldest first; ``projects`` None: every project."""
    query = select(events).where(events.c.seq > after).order_by(events.c.seq).limit(limit)
    if projects is not None:
        if not projects:
            return []
        query = query.where(events.c.project.in_(list(projects)))
    return [_event(r) for r in conn.execute(query)]


def read_kinds(
    conn: Connection, after: int, kinds: Collection[str] | None, *, limit: int = 500
) -> tuple[list[Event], int]:
    """(the events after ``after`` whose kind matches one of ``kinds`` — patterns as
    ``model.events.kind_matches`` reads them; None: every event —, the ``seq`` read up
    to). The log is walked in SQL; only the events wanted are decoded. Pass the second
    back as ``after`` next time: the events passed over are not wanted."""
    if kinds is None or "*" in kinds:
        found = read(conn, after, limit=limit)
        return found, (found[-1].seq if found else after)
    upto = head(conn)
    if not kinds or upto <= after:
        return [], max(after, upto)
    exact = [k for k in kinds if not k.endswith(".*")]
    prefixes = [k[:-1] for k in kinds if k.endswith(".*")]
    wanted: list[ColumnElement[bool]] = [events.c.kind.in_(exact)] if exact else []
    wanted += [events.c.kind.startswith(p, autoescape=True) for p in prefixes]
    query = (
        select(events)
        .where(events.c.seq > after, events.c.seq <= upto, or_(*wanted))
        .order_by(events.c.seq)
        .limit(limit)
    )
    found = [_event(r) for r in conn.execute(query)]
    return found, (found[-1].seq if len(found) == limit else upto)


def head(conn: Connection) -> int:
    """The newest ``seq`` logged (0 for an empty log)."""
    return int(
        conn.execute(select(events.c.seq).order_by(events.c.seq.desc()).limit(1)).scalar() or 0
    )


def offset(conn: Connection, consumer: str) -> int | None:
    value = conn.execute(
        select(event_offsets.c.seq).where(event_offsets.c.consumer == consumer)
    ).scalar()
    return None if value is None else int(value)


def commit_offset(conn: Connection, consumer: str, seq: int, now: float) -> None:
    """Move ``consumer`` forward to ``seq`` (never back)."""
    done = conn.execute(
        update(event_offsets)
        .where(event_offsets.c.consumer == consumer, event_offsets.c.seq < seq)
        .values(seq=seq, updated_at=now)
    )
    if done.rowcount == 0 and offset(conn, consumer) is None:
        conn.execute(insert(event_offsets).values(consumer=consumer, seq=seq, updated_at=now))
