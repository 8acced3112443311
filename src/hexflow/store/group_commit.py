"""GroupWriter: group commit of the service's small writes — new runs with their tasks,
``Idempotency-Key`` reservations and audit rows — from concurrent requests.

Each request hands its rows over as one ``Writes`` and waits for its future. One writer
thread takes every ``Writes`` waiting (up to ``max_batch``) and inserts them all in one
transaction: a request is answered only after the commit that holds its rows, and N
concurrent requests cost one commit (one WAL flush) instead of N. A batch that fails
(a key taken twice, a duplicate run id) is rolled back and its ``Writes`` retried one
transaction each, so only the offending request gets the error (``Conflict`` for a
unique key) and the others are unaffected. A ``Writes`` is all or nothing.
"""

from __future__ import annotations

import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hexflow.errors import Conflict, StoreError
from hexflow.model import RunRecord, TaskRecord
from hexflow.store.rows import (
    INSERT_TASK_COLUMNS,
    RUN_COLUMNS,
    run_params,
    run_row,
    task_insert_params,
)
from hexflow.store.schema import runs, tasks
from hexflow.store.service_schema import audit_log, idempotency_keys

log = logging.getLogger("hexflow.store")

IDEMPOTENCY_TTL = 24 * 3600.0  # seconds a key is remembered
PURGE_EVERY = 60.0  # seconds between two purges of expired keys (with a batch)
_STOP = object()


@dataclass(frozen=True, slots=True)
class KeyRow:
    """An ``Idempotency-Key`` reserved for the run created with it."""

    user: str
    key: str
    fingerprint: str
    run_id: str
    project: str
    created_at: float


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: float
    actor: str
    project: str | None
    action: str
    target: str
    outcome: str
    status: int | None = None
    source: str | None = None
    detail: str | None = None

    def params(self) -> tuple[Any, ...]:
        """The row's values, in field order (cut to the columns' sizes)."""
        source = (self.source or None) and self.source[:64]
        return (
            self.at,
            self.actor[:128],
            self.project,
            self.action,
            self.target[:256],
            self.outcome,
            self.status,
            source,
            self.detail,
        )

    def values(self) -> dict[str, Any]:
        return dict(zip(_AUDIT_COLUMNS, self.params(), strict=True))


@dataclass(frozen=True, slots=True)
class Writes:
    """What one request writes, all or nothing: a new run and its tasks, the key it was
    submitted with, audit rows."""

    run: RunRecord | None = None
    tasks: Sequence[TaskRecord] = ()
    key: KeyRow | None = None
    audit: Sequence[AuditRow] = field(default_factory=tuple)


class GroupWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        clock: Callable[[], float] = time.time,
        write_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._engine = engine
        self._write_lock = write_lock if write_lock is not None else nullcontext()
        self._max_batch = max(1, max_batch)
        self._now = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._purged_at = 0.0
        # What it did so far (the server's /metrics): commits, Writes committed, and the
        # seconds spent writing and committing them.
        self.batches = 0
        self.written = 0
        self.busy_seconds = 0.0
        self._raw: Any = None  # the pool's proxy of the connection the writer thread keeps

    def submit(self, writes: Writes) -> Future[None]:
        """Queue ``writes``; the future completes once they are committed (or failed)."""
        done: Future[None] = Future()
        with self._lock:
            if self._closed:
                raise StoreError("the service database is closed", hint="restart the server")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="hexflow-group-commit", daemon=True
                )
                self._thread.start()
            self._queue.put((writes, done))
        return done

    def write(self, writes: Writes) -> None:
        """``submit`` and wait for the commit: the rows are durable when this returns."""
        self.submit(writes).result()

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()
        if self._raw is not None:
            self._raw.close()  # back to the pool
            self._raw = None

    # ------------------------------------------------------------------ writer thread
    def _work(self) -> None:
        while True:
            first = self._queue.get()
            stop = first is _STOP
            batch = [] if stop else [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Writes, Future[None]]]) -> None:
        start = time.perf_counter()
        try:
            self._commit_batch(batch)
        finally:
            self.busy_seconds += time.perf_counter() - start

    def _commit_batch(self, batch: list[tuple[Writes, Future[None]]]) -> None:
        live = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
        try:
            self._transaction([w for w, _ in live], purge=True)
        except _DRIVER_ERRORS as exc:
            if len(live) == 1:
                live[0][1].set_exception(_error(exc))
                return
            # Some request's rows were refused: each one again, on its own.
            for writes, done in live:
                try:
                    self._transaction([writes], purge=False)
                except _DRIVER_ERRORS as one:
                    done.set_exception(_error(one))
                else:
                    self._written(1)
                    done.set_result(None)
            return
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for _, done in live:
                done.set_exception(exc)
            log.exception("group commit failed")
            return
        self._written(len(live))
        for _, done in live:
            done.set_result(None)

    def _written(self, n: int) -> None:
        self.batches += 1
        self.written += n

    def _transaction(self, items: Sequence[Writes], *, purge: bool) -> None:
        """One transaction of ``items``. SQLite and PostgreSQL (psycopg): plain SQL on a
        connection this thread holds, one multi-row INSERT per table. Each statement lets
        go of the GIL, and taking it back may wait for the busy event loop's thread: the
        fewer the statements and round trips, the shorter the commit (executemany would
        take one per row; on PostgreSQL the whole transaction is one pipelined round trip
        besides the flush)."""
        now = self._now()
        purge = purge and now - self._purged_at >= PURGE_EVERY
        expired = now - IDEMPOTENCY_TTL
        dialect = self._engine.dialect
        if dialect.name == "sqlite":
            con: sqlite3.Connection = self._held().driver_connection
            with self._write_lock:
                try:
                    con.execute("BEGIN")
                    if purge:
                        con.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (expired,))
                    _insert_raw(con.execute, items, "?", con.getlimit(_SQLITE_VARIABLES))
                    con.commit()
                except BaseException:
                    if con.in_transaction:
                        con.rollback()
                    raise
        elif dialect.name == "postgresql" and dialect.driver == "psycopg":
            pg = self._held().driver_connection
            try:
                with pg.pipeline(), pg.cursor() as cur:
                    if purge:
                        cur.execute(
                            "DELETE FROM idempotency_keys WHERE created_at < %s", (expired,)
                        )
                    _insert_raw(cur.execute, items, "%s", 65535)
                    pg.commit()
            except BaseException as exc:
                self._release(broken=pg.closed or pg.broken)
                if isinstance(exc, _psycopg_error()):
                    raise _StoreFailure(exc) from exc
                raise
        else:
            with self._write_lock, self._engine.begin() as conn:
                if purge:
                    conn.execute(
                        delete(idempotency_keys).where(idempotency_keys.c.created_at < expired)
                    )
                _insert(conn, items)
        if purge:
            self._purged_at = now

    def _held(self) -> Any:
        """The pool's proxy of the connection this thread keeps (taken at first use)."""
        if self._raw is None:
            self._raw = self._engine.raw_connection()
        return self._raw

    def _release(self, *, broken: bool) -> None:
        """After a failed transaction: roll back; a broken connection is dropped (the
        next batch takes a new one from the pool)."""
        if self._raw is None:
            return
        if broken:
            self._raw.invalidate()
            self._raw = None
            return
        try:
            self._raw.driver_connection.rollback()
        except Exception:  # noqa: BLE001 - then it is broken after all
            self._raw.invalidate()
            self._raw = None


class _StoreFailure(Exception):
    """A driver error of the psycopg path, with whether it was a unique-key violation."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.unique = type(cause).__name__ in ("UniqueViolation", "IntegrityError") or (
            getattr(cause, "sqlstate", "") or ""
        ).startswith("23")


_DRIVER_ERRORS = (SQLAlchemyError, sqlite3.Error, _StoreFailure)


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


_SQLITE_VARIABLES = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER


def _key_params(k: KeyRow) -> tuple[Any, ...]:
    return (k.user, k.key, k.fingerprint, k.run_id, k.project, k.created_at)


_KEY_COLUMNS = ("user_name", "key", "fingerprint", "run_id", "project", "created_at")
_AUDIT_COLUMNS = tuple(f.name for f in fields(AuditRow))  # audit_log's, but for its id


def _insert(conn: Connection, items: Sequence[Writes]) -> None:
    keys = [
        dict(zip(_KEY_COLUMNS, _key_params(w.key), strict=True)) for w in items if w.key is not None
    ]
    if keys:
        conn.execute(insert(idempotency_keys), keys)
    new_runs = [run_row(w.run) for w in items if w.run is not None]
    if new_runs:
        conn.execute(insert(runs), new_runs)
    task_rows = [
        dict(zip(INSERT_TASK_COLUMNS, task_insert_params(rec, seq), strict=True))
        for w in items
        for seq, rec in enumerate(w.tasks)
    ]
    if task_rows:
        conn.execute(insert(tasks), task_rows)
    audit = [row.values() for w in items for row in w.audit]
    if audit:
        conn.execute(insert(audit_log), audit)


def _insert_raw(
    execute: Callable[[str, Any], Any], items: Sequence[Writes], mark: str, limit: int
) -> None:
    """The rows of ``items`` as multi-row INSERTs in the driver's own parameter style
    (``mark``), at most ``limit`` parameters a statement."""
    for table, columns, rows in (
        ("idempotency_keys", _KEY_COLUMNS, [_key_params(w.key) for w in items if w.key]),
        ("runs", RUN_COLUMNS, [run_params(w.run) for w in items if w.run is not None]),
        (
            "tasks",
            INSERT_TASK_COLUMNS,
            [task_insert_params(rec, seq) for w in items for seq, rec in enumerate(w.tasks)],
        ),
        ("audit_log", _AUDIT_COLUMNS, [row.params() for w in items for row in w.audit]),
    ):
        step = max(1, min(limit, 32766) // len(columns))
        for at in range(0, len(rows), step):
            chunk = rows[at : at + step]
            execute(_multi_insert(table, columns, len(chunk), mark), list(chain(*chunk)))


@functools.lru_cache(maxsize=256)
def _multi_insert(table: str, columns: tuple[str, ...], n: int, mark: str) -> str:
    one = f"({', '.join([mark] * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * n)}"


def _error(exc: Exception) -> Exception:
    unique = isinstance(exc, IntegrityError | sqlite3.IntegrityError) or (
        isinstance(exc, _StoreFailure) and exc.unique
    )
    if unique:
        return Conflict(f"already stored: {getattr(exc, 'orig', None) or exc}")
    return StoreError(f"store write failed and was rolled back: {exc}")
