"""SqlStore: the Store on SQLAlchemy 2 Core; SQLite (WAL) by default, any SQLAlchemy URL.

The schema is created and upgraded by Alembic on open. ``save`` is one transaction with
executemany statements, which is what makes the engine's group commit cheap. SQLite runs
in WAL mode with synchronous=NORMAL: a committed transaction survives the death of the
process (the case hexflow guarantees: ``kill -9`` then ``resume``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, insert, select, update
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from hexflow.errors import StoreError
from hexflow.model import RunRecord, TaskRecord, TaskSpec, TaskState
from hexflow.model.events import Event, NewEvent
from hexflow.store import events_sql
from hexflow.store.base import CancelRequest
from hexflow.store.lookup import resolve_run_id, resolve_task
from hexflow.store.rows import (
    INSERT_RUN_SQL,
    INSERT_TASK_COLUMNS,
    INSERT_TASK_SQL,
    MUTABLE_TASK_COLUMNS,
    UPDATE_RUN_SQL,
    UPDATE_TASK_SQL,
    mutable_params,
    mutable_row,
    run_from_row,
    run_params,
    run_row,
    task_from_row,
    task_insert_params,
)
from hexflow.store.schema import SCHEMA_HEAD, cancel_requests, runs, tasks

_MIGRATIONS = Path(__file__).parent / "migrations"
_RUNS = runs  # ``save`` takes a ``runs`` argument that shadows the table name


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


class SqlStore:
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine = _make_engine(url)
            _migrate(self._engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store at {_redact(url)}: {exc.__class__.__name__}: {exc}",
                hint="check the database URL (HEXFLOW_DB / --db) and that the server is up",
            ) from exc
        self._seq: dict[str, int] = {}
        self._update_task = (
            update(tasks)
            .where(
                tasks.c.run_id == bindparam("b_run_id"), tasks.c.task_id == bindparam("b_task_id")
            )
            .values({c: bindparam(c) for c in MUTABLE_TASK_COLUMNS})
        )
        # SQLite: the per-turn task update as plain SQL with positional parameters, which
        # skips SQLAlchemy's statement compilation and parameter processing (the hot path
        # of the engine's group commit). Other databases use the Core statement above.
        self._update_task_sql: str | None = None
        self._sqlite = self._engine.dialect.name == "sqlite"
        if self._sqlite:
            self._update_task_sql = UPDATE_TASK_SQL
        # SQLite on a file: ``create_run`` and ``save`` run on one DB-API connection that
        # this store holds (taken from the engine's pool, so it has the same pragmas: WAL,
        # synchronous=NORMAL), with explicit BEGIN/COMMIT around plain SQL. That skips
        # SQLAlchemy's per-transaction work, about half the cost of a small commit. Only a
        # file database: with a pool of one connection per thread (``:memory:``) another
        # connection would not see the same database.
        self._fast = self._sqlite and isinstance(self._engine.pool, QueuePool)
        self._raw: Any = None  # the pool's proxy of the held connection
        self._raw_lock = threading.Lock()
        # Specs this store wrote, by run (the few latest runs): ``load_tasks`` reuses these
        # immutable objects instead of unpickling every spec again when an engine loads
        # the run it has just created.
        self._specs: dict[str, dict[str, TaskSpec]] = {}

    def create_run(self, run: RunRecord, task_records: Sequence[TaskRecord]) -> None:
        if self._fast:
            self._write_sqlite(new_run=run, new_tasks=task_records)
            self._remember_specs(run.id, task_records)
            return
        try:
            with self._tx() as conn:
                conn.execute(insert(runs), [run_row(run)])
                self._seq[run.id] = 0
                self._insert_tasks(conn, task_records)
        except BaseException:
            self._seq.pop(run.id, None)  # rolled back: do not trust the cached sequence
            raise
        self._remember_specs(run.id, task_records)

    def save(
        self,
        *,
        runs: Sequence[RunRecord] = (),
        new_tasks: Sequence[TaskRecord] = (),
        tasks: Sequence[TaskRecord] = (),
        handled_cancels: Sequence[int] = (),
        events: Sequence[NewEvent] = (),
    ) -> None:
        if self._fast:
            self._write_sqlite(
                runs=runs,
                new_tasks=new_tasks,
                tasks=tasks,
                handled_cancels=handled_cancels,
                events=events,
            )
            for rec in new_tasks:
                self._remember_specs(rec.run_id, (rec,))
            return
        with self._tx() as conn:
            for run in runs:
                row = run_row(run)
                run_id = row.pop("id")
                result = conn.execute(_RUNS.update().where(_RUNS.c.id == run_id).values(row))
                if result.rowcount == 0:
                    raise StoreError(
                        f"run {run_id} was never created",
                        hint="create a run with create_run before saving changes to it",
                    )
            if new_tasks:
                self._insert_tasks(conn, new_tasks)
            if tasks:
                if self._update_task_sql is not None:
                    params = [mutable_params(t) for t in tasks]
                    result = conn.exec_driver_sql(self._update_task_sql, params)
                else:
                    result = conn.execute(self._update_task, [mutable_row(t) for t in tasks])
                if result.rowcount != len(tasks) and result.rowcount >= 0:
                    raise StoreError(
                        f"{len(tasks) - result.rowcount} task update(s) matched no row",
                        hint="tasks must be created (new_tasks) before they are updated",
                    )
            if handled_cancels:
                conn.execute(
                    cancel_requests.update()
                    .where(cancel_requests.c.id.in_(list(handled_cancels)))
                    .values(handled=True)
                )
            if events:  # in the same transaction: logged if and only if the changes are
                events_sql.append(conn, events, numbers=False)
        for rec in new_tasks:
            self._remember_specs(rec.run_id, (rec,))

    def _write_sqlite(
        self,
        *,
        new_run: RunRecord | None = None,
        runs: Sequence[RunRecord] = (),
        new_tasks: Sequence[TaskRecord] = (),
        tasks: Sequence[TaskRecord] = (),
        handled_cancels: Sequence[int] = (),
        events: Sequence[NewEvent] = (),
    ) -> None:
        """``create_run`` or ``save`` on the held SQLite connection, in one transaction."""
        with self._raw_lock:
            if self._raw is None:
                try:
                    self._raw = self._engine.raw_connection()
                except SQLAlchemyError as exc:
                    raise StoreError(f"store transaction could not start: {exc}") from exc
            con: sqlite3.Connection = self._raw.driver_connection
            try:
                con.execute("BEGIN")
            except sqlite3.Error as exc:
                raise StoreError(f"store transaction could not start: {exc}") from exc
            try:
                if new_run is not None:
                    con.execute(INSERT_RUN_SQL, run_params(new_run))
                    self._seq[new_run.id] = 0
                for run in runs:
                    params = run_params(run)
                    if con.execute(UPDATE_RUN_SQL, (*params[1:], params[0])).rowcount == 0:
                        raise StoreError(
                            f"run {run.id} was never created",
                            hint="create a run with create_run before saving changes to it",
                        )
                if new_tasks:
                    rows = self._task_rows(
                        new_tasks, lambda run_id: self._next_seq_raw(con, run_id)
                    )
                    con.executemany(INSERT_TASK_SQL, rows)
                if tasks:
                    count = con.executemany(UPDATE_TASK_SQL, map(mutable_params, tasks)).rowcount
                    if count != len(tasks) and count >= 0:
                        raise StoreError(
                            f"{len(tasks) - count} task update(s) matched no row",
                            hint="tasks must be created (new_tasks) before they are updated",
                        )
                if handled_cancels:
                    ids = list(handled_cancels)
                    con.execute(
                        "UPDATE cancel_requests SET handled = 1 WHERE id IN "
                        f"({', '.join('?' * len(ids))})",
                        ids,
                    )
                if events:
                    events_sql.append_sqlite(con, events)
                con.commit()
            except BaseException as exc:
                if con.in_transaction:
                    con.rollback()
                if new_run is not None:
                    self._seq.pop(new_run.id, None)  # rolled back: do not trust the sequence
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store write failed and was rolled back: {exc}") from exc
                raise

    def _next_seq_raw(self, con: sqlite3.Connection, run_id: str) -> int:
        if run_id not in self._seq:
            if con.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"run {run_id} was never created; cannot add tasks to it")
            top = con.execute(
                "SELECT seq FROM tasks WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
            ).fetchone()
            self._seq[run_id] = -1 if top is None else top[0]
        self._seq[run_id] += 1
        return self._seq[run_id]

    @staticmethod
    def _task_rows(
        records: Sequence[TaskRecord], next_seq: Callable[[str], int]
    ) -> list[tuple[Any, ...]]:
        """Parameters of the task insert, in ``INSERT_TASK_COLUMNS`` order."""
        return [task_insert_params(rec, next_seq(rec.run_id)) for rec in records]

    def _remember_specs(self, run_id: str, records: Sequence[TaskRecord]) -> None:
        known = self._specs.pop(run_id, None) or {}
        known.update((rec.spec.id, rec.spec) for rec in records)
        self._specs[run_id] = known  # now the newest
        while len(self._specs) > 4:
            del self._specs[next(iter(self._specs))]

    def _insert_tasks(self, conn: Any, records: Sequence[TaskRecord]) -> None:
        if not records:
            return
        rows = self._task_rows(records, lambda run_id: self._next_seq(conn, run_id))
        if self._sqlite:  # plain SQL, as for the task update
            conn.exec_driver_sql(INSERT_TASK_SQL, rows)
        else:
            conn.execute(
                insert(tasks), [dict(zip(INSERT_TASK_COLUMNS, r, strict=True)) for r in rows]
            )

    def _next_seq(self, conn: Any, run_id: str) -> int:
        if run_id not in self._seq:
            if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                raise StoreError(f"run {run_id} was never created; cannot add tasks to it")
            top = conn.execute(
                select(tasks.c.seq)
                .where(tasks.c.run_id == run_id)
                .order_by(tasks.c.seq.desc())
                .limit(1)
            ).scalar()
            self._seq[run_id] = -1 if top is None else top
        self._seq[run_id] += 1
        return self._seq[run_id]

    def claim_run(self, run_id: str, expected_owner: str | None, owner: str) -> bool:
        seen = (
            _RUNS.c.owner.is_(None) if expected_owner is None else _RUNS.c.owner == expected_owner
        )
        with self._tx() as conn:
            result = conn.execute(
                _RUNS.update().where(_RUNS.c.id == run_id, seen).values(owner=owner)
            )
            return bool(result.rowcount == 1)

    def get_run(self, run_id: str) -> RunRecord:
        with self._engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
            if row is None:
                ids = conn.execute(select(runs.c.id).where(runs.c.id.startswith(run_id))).scalars()
                full = resolve_run_id(run_id, list(ids))
                row = conn.execute(select(runs).where(runs.c.id == full)).first()
            assert row is not None
            return run_from_row(row._mapping)

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.created_at.desc()).limit(limit))
            return [run_from_row(r._mapping) for r in rows]

    def load_tasks(self, run_id: str) -> list[TaskRecord]:
        full = self.get_run(run_id).id
        with self._engine.connect() as conn:
            rows = conn.execute(select(tasks).where(tasks.c.run_id == full).order_by(tasks.c.seq))
            known = self._specs.get(full, {})
            return [task_from_row(r._mapping, known.get(r.task_id)) for r in rows]

    def get_task(self, run_id: str, task: str) -> TaskRecord:
        full = self.get_run(run_id).id
        with self._engine.connect() as conn:
            row = conn.execute(
                select(tasks).where(tasks.c.run_id == full, tasks.c.task_id == task)
            ).first()
        if row is not None:
            return task_from_row(row._mapping)
        return resolve_task(full, task, self.load_tasks(full))

    def find_cached(self, cache_key: str) -> TaskRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(tasks)
                .where(tasks.c.cache_key == cache_key, tasks.c.state == TaskState.SUCCEEDED.value)
                .limit(1)
            ).first()
            return task_from_row(row._mapping) if row else None

    def request_cancel(self, run_id: str, task_id: str | None = None) -> int:
        full = self.get_run(run_id).id
        with self._tx() as conn:
            result = conn.execute(
                insert(cancel_requests).values(
                    run_id=full, task_id=task_id, requested_at=time.time(), handled=False
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def pending_cancels(self, run_id: str) -> list[CancelRequest]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(cancel_requests).where(
                    cancel_requests.c.run_id == run_id, cancel_requests.c.handled.is_(False)
                )
            )
            return [CancelRequest(id=r.id, run_id=r.run_id, task_id=r.task_id) for r in rows]

    def events_after(self, after: int, limit: int = 500) -> list[Event]:
        with self._engine.connect() as conn:
            return events_sql.read(conn, after, limit=limit)

    def close(self) -> None:
        with self._raw_lock:
            if self._raw is not None:
                self._raw.close()  # back to the pool, which dispose() then closes
                self._raw = None
        self._engine.dispose()

    def _tx(self) -> Any:
        return _Transaction(self._engine)


class _Transaction:
    """``engine.begin()`` that turns driver errors into StoreError with the cause."""

    def __init__(self, engine: Engine) -> None:
        self._cm = engine.begin()

    def __enter__(self) -> Any:
        try:
            return self._cm.__enter__()
        except SQLAlchemyError as exc:
            raise StoreError(f"store transaction could not start: {exc}") from exc

    def __exit__(self, *exc_info: Any) -> bool:
        try:
            suppressed = bool(self._cm.__exit__(*exc_info))
        except SQLAlchemyError as exc:
            raise StoreError(f"store write failed and was rolled back: {exc}") from exc
        # A driver error inside the block (e.g. a duplicate key) is re-raised by the
        # context manager as is; it has been rolled back, so report it as a StoreError.
        error = exc_info[1]
        if isinstance(error, SQLAlchemyError) and not suppressed:
            cause = getattr(error, "orig", None) or error
            raise StoreError(f"store write failed and was rolled back: {cause}") from error
        return suppressed


def _make_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """``pool_size``: connections kept open (and as many more opened at peaks), for an
    engine shared by a server's request threads; SQLAlchemy's default (5) otherwise."""
    pool = {"pool_size": pool_size, "max_overflow": pool_size} if pool_size else {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if not Path(path).exists():
                _create_sqlite(path)
        else:
            pool = {}  # in memory: one connection per thread, no queue pool
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_engine(url, **pool)
    _ping_when_idle(engine)
    return engine


PING_IDLE = 5.0  # seconds a pooled connection may sit unused before it is pinged on checkout


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, for connections that sat unused in the pool: one
    idle over ``PING_IDLE`` seconds is pinged when checked out and replaced if dead (the
    database restarted, a proxy dropped it). ``pool_pre_ping`` pinged on every checkout: a
    round trip to the server before each statement of a busy server (a tenth of its time
    under load), for connections that had been used a moment before."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE:
            return
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            if not dbapi_conn.autocommit:
                dbapi_conn.rollback()  # leave no transaction open behind the ping
        except Exception as exc:  # noqa: BLE001 - any failure: a fresh connection instead
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _create_sqlite(path: str) -> None:
    """A new SQLite database appears whole or not at all: its schema is built in a file
    beside it, made self-contained (no WAL) and then linked into place, so a crash while
    the schema is built (a kill -9 during the very first run) leaves no half-made store."""
    import os

    tmp = f"{path}.new-{os.getpid()}-{threading.get_ident()}"
    engine = create_engine(f"sqlite:///{tmp}", connect_args={"timeout": 30})
    try:
        _migrate(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    finally:
        engine.dispose()
    try:
        os.link(tmp, path)  # never replaces a store another process created meanwhile
    except FileExistsError:
        pass
    finally:
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm", f"{tmp}-journal"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def _migrate(engine: Engine) -> None:
    from sqlalchemy import inspect, text

    with engine.begin() as conn:
        if inspect(conn).has_table("alembic_version"):
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if current == SCHEMA_HEAD:
                return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
