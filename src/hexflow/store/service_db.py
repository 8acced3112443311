"""ServiceDb: the service's own view of the database — accounts, logs and run queries —
on one SQLAlchemy engine, after the same Alembic migrations as ``SqlStore``.

Runs and tasks change only through ``SqlStore`` (the engine); this side creates new service
runs (``writer``: group commit, with their idempotency keys and audit rows), reads runs and
tasks (by project, paginated) and owns the service tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hexflow.errors import Conflict, StoreError
from hexflow.store.sql import _make_engine, _migrate, _redact
from hexflow.store.wal import SAFETY_NET_PAGES, WalCheckpointer


def _checkpoint_later(dbapi_conn: Any, _record: Any) -> None:
    """A service connection leaves checkpoints to the WalCheckpointer (a safety net stays)."""
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
    cur.close()


class ServiceDb:
    def __init__(self, url: str) -> None:
        if url == "memory://" or url.endswith(":memory:") or url in ("sqlite://", "sqlite:///"):
            raise StoreError(
                f"service mode needs a database file or server, not {url!r}",
                hint="use a sqlite:///PATH or postgresql:// URL",
            )
        self.url = url
        try:
            # a server's request threads share it (anyio's pool has 40): few opened anew
            self.engine = _make_engine(url, pool_size=16)
            self.checkpointer: WalCheckpointer | None = None
            if self.engine.dialect.name == "sqlite":
                self.checkpointer = WalCheckpointer(self.engine.url.database or "")
                event.listen(self.engine, "connect", _checkpoint_later)
            _migrate(self.engine)
            self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            # SQLite has one writer at a time; a writer that finds the database locked
            # sleeps in SQLite's busy handler (1, 2, 5, 10 ... 100 ms steps) and wakes
            # late. This process's writers queue on a lock instead: handed over at once.
            self.write_lock: AbstractContextManager[Any] = (
                threading.RLock() if url.startswith("sqlite") else nullcontext()
            )
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the service database at {_redact(url)}: {exc}",
                hint="check the database URL (--db / HEXFLOW_DB) and that the server is up",
            ) from exc
        from hexflow.store.accounts import Accounts
        from hexflow.store.group_commit import GroupWriter
        from hexflow.store.groups import Groups
        from hexflow.store.run_queries import RunQueries
        from hexflow.store.service_log import ServiceLog

        # New runs, idempotency keys and audit rows: group-committed (its thread starts
        # with the first write).
        self.writer = GroupWriter(self.engine, write_lock=self.write_lock)
        self.accounts = Accounts(self)
        self.groups = Groups(self)
        self.log = ServiceLog(self)
        self.runs = RunQueries(self)

    @contextmanager
    def write(self, conflict: str | None = None) -> Iterator[Connection]:
        """One transaction; a unique-key violation becomes ``Conflict(conflict)`` if given."""
        try:
            with self.write_lock, self.engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            if conflict is not None:
                raise Conflict(conflict) from None
            raise StoreError(f"store write failed and was rolled back: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"store write failed and was rolled back: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads, in autocommit: on PostgreSQL no BEGIN and ROLLBACK
        round trips around them (each statement sees the data committed when it starts)."""
        try:
            with self._reader.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    def start_checkpoints(self) -> None:
        """SQLite: checkpoint the WAL on a thread of its own from now on (a server; see
        store/wal.py). Nothing to do on PostgreSQL."""
        if self.checkpointer is not None:
            self.checkpointer.start()

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()
        if self.checkpointer is not None:
            self.checkpointer.stop()

    def __enter__(self) -> ServiceDb:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
