"""Triggers and the nonces of signed webhook requests in SQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hexflow.model.events import Event, NewEvent
from hexflow.model.triggers import Trigger, TriggerKind
from hexflow.store.events_schema import hook_nonces, triggers
from hexflow.store.events_sql import INSERT_EVENT_IGNORE_SQL, event_params

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def insert_trigger(conn: Connection, t: Trigger) -> None:
    conn.execute(
        insert(triggers).values(
            id=t.id,
            project=t.project,
            name=t.name,
            kind=t.kind.value,
            function=t.function,
            config=_dumps(t.config),
            args=_dumps(t.args),
            enabled=t.enabled,
            secret=t.secret,
            created_at=t.created_at,
            created_by=t.created_by,
            fired=t.fired,
            last_fired_at=t.last_fired_at,
            last_error=t.last_error,
            workflow=t.workflow,
        )
    )


def _trigger(row: Any) -> Trigger:
    return Trigger(
        id=row.id,
        project=row.project,
        name=row.name,
        kind=TriggerKind(row.kind),
        function=row.function,
        config=json.loads(row.config),
        args=json.loads(row.args),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        created_by=row.created_by,
        secret=row.secret,
        fired=row.fired,
        last_fired_at=row.last_fired_at,
        last_error=row.last_error,
        workflow=row.workflow,
    )


def get_trigger(
    conn: Connection, trigger_id: str, projects: Collection[str] | None = None
) -> Trigger | None:
    query = select(triggers).where(triggers.c.id == trigger_id)
    if projects is not None:
        query = query.where(triggers.c.project.in_(list(projects)))
    row = conn.execute(query).first()
    return _trigger(row) if row else None


def list_triggers(
    conn: Connection, projects: Collection[str] | None, kind: TriggerKind | None = None
) -> list[Trigger]:
    """Triggers of ``projects`` (None: all), oldest first."""
    query = select(triggers).order_by(triggers.c.created_at, triggers.c.id)
    if projects is not None:
        if not projects:
            return []
        query = query.where(triggers.c.project.in_(list(projects)))
    if kind is not None:
        query = query.where(triggers.c.kind == kind.value)
    return [_trigger(r) for r in conn.execute(query)]


def delete_trigger(conn: Connection, trigger_id: str) -> bool:
    conn.execute(delete(hook_nonces).where(hook_nonces.c.trigger_id == trigger_id))
    return bool(conn.execute(delete(triggers).where(triggers.c.id == trigger_id)).rowcount)


def record_firing(
    conn: Connection,
    trigger_id: str,
    *,
    at: float,
    error: str | None,
    disable: bool = False,
    count: int = 1,
) -> None:
    """``count`` firings of a trigger, the last ``at`` with ``error`` (None: it called)."""
    values: dict[str, Any] = {
        "fired": triggers.c.fired + count,
        "last_fired_at": at,
        "last_error": error,
    }
    if disable:
        values["enabled"] = False
    conn.execute(update(triggers).where(triggers.c.id == trigger_id).values(values))


def purge_nonces(conn: Connection, now: float) -> None:
    conn.execute(delete(hook_nonces).where(hook_nonces.c.expires_at < now))


def fresh_nonces(conn: Connection, pairs: list[tuple[str, str]]) -> list[bool]:
    """For each (trigger, nonce): True if never seen (nor earlier in ``pairs``)."""
    if not pairs:
        return []
    seen = {
        (r.trigger_id, r.nonce)
        for r in conn.execute(
            select(hook_nonces.c.trigger_id, hook_nonces.c.nonce).where(
                hook_nonces.c.nonce.in_([n for _, n in pairs])
            )
        )
    }
    out = []
    for pair in pairs:
        out.append(pair not in seen)
        seen.add(pair)
    return out


def log_hooks_sqlite(
    con: sqlite3.Connection, hooks: Sequence[tuple[str, str, float, NewEvent]], now: float
) -> list[Event | None]:
    """The webhook path's write on a raw SQLite connection, in one transaction: expired
    nonces purged, each (trigger, nonce, expires at, event) whose nonce is fresh recorded
    and its event logged (numbered); None for a replayed nonce (seen before, or earlier in
    ``hooks``). The write lock is taken at once (BEGIN IMMEDIATE): no other writer can
    record a nonce between the look and the insert."""
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("DELETE FROM hook_nonces WHERE expires_at < ?", (now,))
        seen: set[tuple[str, str]] = set()
        nonces = [nonce for _, nonce, _, _ in hooks]
        for at in range(0, len(nonces), 500):
            chunk = nonces[at : at + 500]
            marks = ",".join("?" * len(chunk))
            found = con.execute(
                f"SELECT trigger_id, nonce FROM hook_nonces WHERE nonce IN ({marks})", chunk
            )
            seen.update((t, n) for t, n in found)
        out: list[Event | None] = []
        for trigger_id, nonce, expires_at, ev in hooks:
            if (trigger_id, nonce) in seen:
                out.append(None)
                continue
            seen.add((trigger_id, nonce))
            con.execute(
                "INSERT INTO hook_nonces (trigger_id, nonce, expires_at) VALUES (?, ?, ?)",
                (trigger_id, nonce, expires_at),
            )
            cur = con.execute(INSERT_EVENT_IGNORE_SQL, event_params(ev))
            logged = cur.rowcount == 1 and cur.lastrowid is not None
            out.append(ev.numbered(int(cur.lastrowid or 0)) if logged else None)
        con.commit()
    except BaseException:
        if con.in_transaction:
            con.rollback()
        raise
    return out


def insert_nonces(conn: Connection, rows: list[tuple[str, str, float]]) -> None:
    """Record webhook nonces; one seen before violates the primary key (a replay)."""
    if rows:
        conn.execute(
            insert(hook_nonces),
            [{"trigger_id": t, "nonce": n, "expires_at": exp} for t, n, exp in rows],
        )
