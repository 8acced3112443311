"""Triggers and the nonces of signed webhook requests in SQL."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hexflow.model.triggers import Trigger, TriggerKind
from hexflow.store.events_schema import hook_nonces, triggers

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
    conn: Connection, trigger_id: str, *, at: float, error: str | None, disable: bool = False
) -> None:
    values: dict[str, Any] = {
        "fired": triggers.c.fired + 1,
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


def insert_nonces(conn: Connection, rows: list[tuple[str, str, float]]) -> None:
    """Record webhook nonces; one seen before violates the primary key (a replay)."""
    if rows:
        conn.execute(
            insert(hook_nonces),
            [{"trigger_id": t, "nonce": n, "expires_at": exp} for t, n, exp in rows],
        )
