"""Pooled PostgreSQL connections that died while idle (the server restarted, a proxy
dropped them) are replaced on checkout, without pinging a connection used a moment ago."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from hexflow.store import sql as store_sql
from hexflow.store.service_db import ServiceDb
from tests.service_env import _postgres_db

PG_URL = os.environ.get("HEXFLOW_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not PG_URL, reason="set HEXFLOW_TEST_POSTGRES_URL (scripts/test.sh does as root)"
)


def _kill_connections(url: str, database: str) -> int:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
    finally:
        admin.dispose()


def test_a_connection_killed_while_idle_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PG_URL
    for url in _postgres_db():
        db = ServiceDb(url)
        try:
            with db.read() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            database = db.engine.url.database
            assert database and _kill_connections(PG_URL, database) >= 1
            # used a moment ago: not pinged (no round trip), so a dead one fails once...
            with pytest.raises(Exception), db.read() as conn:  # noqa: B017,PT011 - driver's
                conn.execute(text("SELECT 1"))
            # ...and is replaced; one idle past the bound is pinged and replaced silently
            with db.read() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            assert _kill_connections(PG_URL, database) >= 1
            monkeypatch.setattr(store_sql, "PING_IDLE", 0.0)
            with db.read() as conn:
                assert conn.execute(text("SELECT 2")).scalar() == 2
            with db.write() as conn:
                assert conn.execute(text("SELECT 3")).scalar() == 3
        finally:
            db.close()
