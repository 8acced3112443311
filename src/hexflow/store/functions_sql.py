"""Registered functions and their invocations in SQL.

Writes take the caller's connection, so that the function gateway's group commit puts a
turn's new invocations, finished ones and their events in one transaction. An invocation
with a ``key`` is created at most once: ``insert_invocations`` skips keys already there
and says which it skipped (the deduplication of at-least-once delivery).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from hexflow.model.events import NewEvent
from hexflow.model.functions import FunctionDef, Invocation, InvocationState, SourceKind
from hexflow.store.events_schema import functions, invocations
from hexflow.store.events_sql import append_sqlite

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


# ---------------------------------------------------------------------- functions
def next_version(conn: Connection, project: str, name: str) -> int:
    top = conn.execute(
        select(func.max(functions.c.version)).where(
            functions.c.project == project, functions.c.name == name
        )
    ).scalar()
    return int(top or 0) + 1


def insert_function(conn: Connection, fn: FunctionDef) -> None:
    conn.execute(
        insert(functions).values(
            project=fn.project,
            name=fn.name,
            version=fn.version,
            kind=fn.kind.value,
            target=fn.target,
            source=fn.source,
            schema=_dumps(fn.schema),
            env=_dumps(fn.env),
            cpus=fn.cpus,
            memory=fn.memory,
            timeout=fn.timeout,
            min_workers=fn.min_workers,
            max_workers=fn.max_workers,
            created_at=fn.created_at,
            created_by=fn.created_by,
            qos=fn.qos,
        )
    )


def _function(row: Any) -> FunctionDef:
    return FunctionDef(
        project=row.project,
        name=row.name,
        version=row.version,
        kind=SourceKind(row.kind),
        target=row.target,
        source=row.source,
        schema=json.loads(row.schema),
        env=json.loads(row.env),
        cpus=row.cpus,
        memory=row.memory,
        timeout=row.timeout,
        min_workers=row.min_workers,
        max_workers=row.max_workers,
        created_at=row.created_at,
        created_by=row.created_by,
        qos=row.qos,
    )


def get_function(
    conn: Connection, project: str, name: str, version: int | None = None
) -> FunctionDef | None:
    query = select(functions).where(functions.c.project == project, functions.c.name == name)
    if version is None:
        query = query.order_by(functions.c.version.desc()).limit(1)
    else:
        query = query.where(functions.c.version == version)
    row = conn.execute(query).first()
    return _function(row) if row else None


def list_functions(conn: Connection, projects: Collection[str]) -> list[FunctionDef]:
    """The newest version of each function of ``projects``, by project and name."""
    if not projects:
        return []
    newest = (
        select(functions.c.project, functions.c.name, func.max(functions.c.version).label("v"))
        .where(functions.c.project.in_(list(projects)))
        .group_by(functions.c.project, functions.c.name)
        .subquery()
    )
    query = (
        select(functions)
        .join(
            newest,
            (functions.c.project == newest.c.project)
            & (functions.c.name == newest.c.name)
            & (functions.c.version == newest.c.v),
        )
        .order_by(functions.c.project, functions.c.name)
    )
    return [_function(r) for r in conn.execute(query)]


# ---------------------------------------------------------------------- invocations
def _row(inv: Invocation) -> dict[str, Any]:
    return {
        "id": inv.id,
        "project": inv.project,
        "function": inv.function,
        "version": inv.version,
        "state": inv.state.value,
        "args": _dumps(inv.args),
        "result": None if inv.result is None else _dumps(inv.result),
        "error": inv.error,
        "traceback": inv.traceback,
        "created_at": inv.created_at,
        "started_at": inv.started_at,
        "ended_at": inv.ended_at,
        "caller": inv.caller[:128],
        "source": inv.source[:128],
        "key": inv.key,
        "attempt": inv.attempt,
        "owner": inv.owner,
    }


def insert_invocations(conn: Connection, new: Sequence[Invocation]) -> set[str]:
    """Insert ``new``; returns the ids of those skipped because their key was taken (by a
    row already stored, or by an earlier invocation of ``new``). One lookup of the keys
    and one ``executemany`` for the batch."""

    def taken(chunk: list[str]) -> Iterable[str]:
        query = select(invocations.c.key).where(invocations.c.key.in_(chunk))
        return (k for (k,) in conn.execute(query))

    rows, skipped = _fresh_rows(new, taken)
    if rows:
        conn.execute(insert(invocations), rows)
    return skipped


def _fresh_rows(
    new: Sequence[Invocation], taken_of: Callable[[list[str]], Iterable[str]]
) -> tuple[list[dict[str, Any]], set[str]]:
    """The rows of ``new`` to insert, and the ids of those whose key is taken: by a stored
    row (``taken_of`` looks keys up, 500 at a time) or by an earlier one of ``new``."""
    keys = [i.key for i in new if i.key is not None]
    taken: set[str] = set()
    for at in range(0, len(keys), 500):
        taken.update(taken_of(keys[at : at + 500]))
    skipped: set[str] = set()
    rows = []
    for inv in new:
        if inv.key is not None:
            if inv.key in taken:
                skipped.add(inv.id)
                continue
            taken.add(inv.key)
        rows.append(_row(inv))
    return rows, skipped


_MUTABLE = (
    "state",
    "result",
    "error",
    "traceback",
    "started_at",
    "ended_at",
    "attempt",
    "owner",
)


def update_invocations(conn: Connection, changed: Sequence[Invocation]) -> None:
    if not changed:
        return
    from sqlalchemy import bindparam

    stmt = (
        update(invocations)
        .where(invocations.c.id == bindparam("b_id"))
        .values({c: bindparam(c) for c in _MUTABLE})
    )
    rows = []
    for inv in changed:
        row = _row(inv)
        rows.append({"b_id": inv.id, **{c: row[c] for c in _MUTABLE}})
    conn.execute(stmt, rows)


def write_sqlite(
    con: sqlite3.Connection,
    new: Sequence[Invocation],
    changed: Sequence[Invocation],
    events: Sequence[NewEvent],
) -> set[str]:
    """The gateway's group commit on a raw SQLite connection, in one transaction: the new
    invocations (those whose key is taken skipped and returned, as ``insert_invocations``
    does), the changed ones, and the events of those logged. Plain statements through
    ``executemany``: the writer thread holds the GIL a fraction of what SQLAlchemy Core's
    statements take, and the server's event loop gets it back sooner."""
    con.execute("BEGIN IMMEDIATE")
    try:

        def taken(chunk: list[str]) -> Iterable[str]:
            marks = ",".join("?" * len(chunk))
            found = con.execute(f"SELECT key FROM invocations WHERE key IN ({marks})", chunk)
            return (k for (k,) in found)

        rows, skipped = _fresh_rows(new, taken) if new else ([], set())
        if rows:
            cols = list(rows[0])
            con.executemany(
                f"INSERT INTO invocations ({', '.join(cols)}) "
                f"VALUES ({', '.join(':' + c for c in cols)})",
                rows,
            )
        if changed:
            sets = ", ".join(f"{c} = :{c}" for c in _MUTABLE)
            con.executemany(
                f"UPDATE invocations SET {sets} WHERE id = :b_id",
                [{"b_id": inv.id, **{c: r[c] for c in _MUTABLE}} for inv in changed
                 for r in (_row(inv),)],
            )  # fmt: skip
        if skipped:  # no event for an invocation that was not created
            events = [e for e in events if e.data.get("invocation") not in skipped]
        if events:
            append_sqlite(con, events)
        con.commit()
    except BaseException:
        if con.in_transaction:
            con.rollback()
        raise
    return skipped


def _invocation(row: Any) -> Invocation:
    return Invocation(
        id=row.id,
        project=row.project,
        function=row.function,
        version=row.version,
        state=InvocationState(row.state),
        args=json.loads(row.args),
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        result=None if row.result is None else json.loads(row.result),
        error=row.error,
        traceback=row.traceback,
        caller=row.caller,
        source=row.source,
        key=row.key,
        attempt=row.attempt,
        owner=row.owner,
    )


def get_invocation(
    conn: Connection, invocation_id: str, projects: Collection[str] | None = None
) -> Invocation | None:
    query = select(invocations).where(invocations.c.id == invocation_id)
    if projects is not None:
        query = query.where(invocations.c.project.in_(list(projects)))
    row = conn.execute(query).first()
    return _invocation(row) if row else None


def invocation_by_key(conn: Connection, key: str) -> Invocation | None:
    row = conn.execute(select(invocations).where(invocations.c.key == key)).first()
    return _invocation(row) if row else None


def list_invocations(
    conn: Connection,
    projects: Collection[str],
    *,
    function: str | None = None,
    state: str | None = None,
    before: tuple[float, str] | None = None,
    limit: int = 50,
) -> list[Invocation]:
    """Newest first; ``before`` is the (created_at, id) of the last one of the previous page."""
    if not projects:
        return []
    query = (
        select(invocations)
        .where(invocations.c.project.in_(list(projects)))
        .order_by(invocations.c.created_at.desc(), invocations.c.id.desc())
        .limit(limit)
    )
    if function is not None:
        query = query.where(invocations.c.function == function)
    if state is not None:
        query = query.where(invocations.c.state == state)
    if before is not None:
        at, last = before
        query = query.where(
            (invocations.c.created_at < at)
            | ((invocations.c.created_at == at) & (invocations.c.id < last))
        )
    return [_invocation(r) for r in conn.execute(query)]


def unfinished_invocations(conn: Connection) -> list[Invocation]:
    """Invocations queued or running (after a crash: to run again), oldest first."""
    query = (
        select(invocations)
        .where(
            invocations.c.state.in_([InvocationState.QUEUED.value, InvocationState.RUNNING.value])
        )
        .order_by(invocations.c.created_at)
    )
    return [_invocation(r) for r in conn.execute(query)]
