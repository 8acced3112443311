"""DataDb: the data lifecycle's view of the database — the catalog and the transfers — on
one SQLAlchemy engine, after the same Alembic migrations as ``SqlStore``.

SQLite (a file) or PostgreSQL; full-text search uses FTS5 or ``tsvector`` accordingly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from hexflow.errors import StoreError
from hexflow.store.sql import _make_engine, _migrate, _redact


class DataDb:
    def __init__(self, url: str) -> None:
        if url == "memory://" or url.endswith(":memory:") or url in ("sqlite://", "sqlite:///"):
            raise StoreError(
                f"the data catalog needs a database file or server, not {url!r}",
                hint="use a sqlite:///PATH or postgresql:// URL (HEXFLOW_DB / --db)",
            )
        self.url = url
        try:
            self.engine = _make_engine(url)
            _migrate(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the data catalog at {_redact(url)}: {exc}",
                hint="check the database URL (--db / HEXFLOW_DB) and that the server is up",
            ) from exc
        self.dialect = self.engine.dialect.name
        from hexflow.store.catalog_sql import CatalogSql
        from hexflow.store.transfer_sql import TransferSql

        self.catalog = CatalogSql(self)
        self.transfers = TransferSql(self)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(f"data store write failed and was rolled back: {cause}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"data store read failed: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> DataDb:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
