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

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hexflow.errors import Conflict, StoreError
from hexflow.model import RunRecord, TaskRecord
from hexflow.store.rows import INSERT_TASK_COLUMNS, run_row, task_insert_params
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

    def values(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor[:128],
            "project": self.project,
            "action": self.action,
            "target": self.target[:256],
            "outcome": self.outcome,
            "status": self.status,
            "source": (self.source or None) and self.source[:64],
            "detail": self.detail,
        }


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
    ) -> None:
        self._engine = engine
        self._max_batch = max(1, max_batch)
        self._now = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._purged_at = 0.0
        self.batches = 0  # commits so far (for tests and the benchmark's report)
        self.written = 0  # Writes committed so far

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
        live = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
        try:
            with self._engine.begin() as conn:
                self._purge(conn)
                _insert(conn, [w for w, _ in live])
        except SQLAlchemyError as exc:
            if len(live) == 1:
                live[0][1].set_exception(_error(exc))
                return
            # Some request's rows were refused: each one again, on its own.
            for writes, done in live:
                try:
                    with self._engine.begin() as conn:
                        _insert(conn, [writes])
                except SQLAlchemyError as one:
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

    def _purge(self, conn: Connection) -> None:
        now = self._now()
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            expired = idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL
            conn.execute(delete(idempotency_keys).where(expired))


def _insert(conn: Connection, items: Sequence[Writes]) -> None:
    keys = [w.key for w in items if w.key is not None]
    if keys:
        conn.execute(
            insert(idempotency_keys),
            [
                {
                    "user_name": k.user,
                    "key": k.key,
                    "fingerprint": k.fingerprint,
                    "run_id": k.run_id,
                    "project": k.project,
                    "created_at": k.created_at,
                }
                for k in keys
            ],
        )
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


def _error(exc: SQLAlchemyError) -> Exception:
    if isinstance(exc, IntegrityError):
        return Conflict(f"already stored: {exc.orig}")
    return StoreError(f"store write failed and was rolled back: {exc}")
