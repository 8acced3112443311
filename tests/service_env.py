"""The service under test: a ``hexflow server`` app in-process (TestClient), on SQLite and,
when HEXFLOW_TEST_POSTGRES_URL is set, on a fresh PostgreSQL database per test.

Accounts every test starts with:
  p1: alice (member), carol (viewer), dave (admin)      p2: bob (member)
  both: erin (member of p1 and p2)                       root: site administrator, no project
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hexflow.model.access import Role, parse_scopes
from hexflow.service import Admin, Service, ServiceConfig
from hexflow.service.api import create_app
from hexflow.settings import Settings
from hexflow.store.service_db import ServiceDb
from tests.helpers import wait_for

PG_URL = os.environ.get("HEXFLOW_TEST_POSTGRES_URL")
TOKEN_URL = "http://testserver/oauth2/token"

HELLO = b"""name: hello
tasks:
  a:
    command: echo hi
  b:
    command: [python3, -c, "print('b')"]
    after: a
"""
SLEEPER = b"""name: sleeper
tasks:
  nap:
    command: [sleep, "60"]
"""

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(
            not PG_URL, reason="set HEXFLOW_TEST_POSTGRES_URL (scripts/test.sh does as root)"
        ),
    ),
]


class Env:
    """One running app, its database and its accounts."""

    def __init__(self, client: TestClient, admin: Admin, db_url: str) -> None:
        self.client = client
        self.admin = admin
        self.db_url = db_url

    @property
    def service(self) -> Service:
        svc: Service = self.client.app.state.service  # type: ignore[attr-defined]
        return svc

    def token(self, user: str, project: str | None = None, scopes: str = "read,submit") -> str:
        return self.admin.create_token(user, project, parse_scopes(scopes)).secret

    def auth(self, user: str, project: str | None = None, scopes: str = "read,submit") -> dict:
        return {"Authorization": f"Bearer {self.token(user, project, scopes)}"}

    def submit(self, headers: dict[str, str], body: bytes = HELLO, **params: Any) -> httpx.Response:
        return self.client.post(
            "/api/v1/runs",
            content=body,
            headers={"Content-Type": "application/yaml", **headers},
            params=params,
        )

    def wait_run(self, headers: dict[str, str], run_id: str, timeout: float = 60) -> dict:
        def ended() -> dict | None:
            got = self.client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
            return got if got["state"] in ("succeeded", "failed", "cancelled") else None

        result: dict = wait_for(ended, timeout, f"run {run_id} to end", every=0.1)
        return result


def _postgres_db() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert PG_URL
    name = f"hxsvc_{uuid.uuid4().hex[:12]}"
    server = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        yield from _postgres_db()
    else:
        yield f"sqlite:///{tmp_path / 'service.db'}"


def make_config(tmp_path: Path, db_url: str, **kw: Any) -> ServiceConfig:
    env = {
        "HEXFLOW_HOME": str(tmp_path / "home"),
        "HEXFLOW_DB": db_url,
        "HEXFLOW_CPUS": "1",
        "HEXFLOW_KILL_GRACE": "0.5",
    }
    settings = Settings.from_env(env=env, cwd=tmp_path)
    # Revocations take effect at once (the tests revoke, then call); test_service_auth
    # checks the bound of the server's default credential cache with a clock of its own.
    kw.setdefault("auth_cache_ttl", 0.0)
    return ServiceConfig(settings=settings, max_parallel_runs=2, **kw)


def seed_accounts(admin: Admin) -> None:
    for name in ("alice", "bob", "carol", "dave", "erin"):
        admin.create_user(name)
    admin.create_user("root", is_admin=True)
    admin.create_project(
        "p1",
        [
            ("alice", Role.MEMBER),
            ("carol", Role.VIEWER),
            ("dave", Role.ADMIN),
            ("erin", Role.MEMBER),
        ],
    )
    admin.create_project("p2", [("bob", Role.MEMBER), ("erin", Role.MEMBER)])


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    config = make_config(tmp_path, db_url)
    db = ServiceDb(db_url)
    admin = Admin(db, actor="cli:test")
    seed_accounts(admin)
    try:
        with TestClient(create_app(config)) as client:
            e = Env(client, admin, db_url)
            try:
                yield e
            finally:
                stop_runs(e.service)
    finally:
        db.close()


def stop_runs(service: Service) -> None:
    """Cancel what is still running and wait for the drivers, so no thread outlives a test."""
    for run in service.db.runs.unfinished():
        service.manager.cancel(run.id)
    assert service.manager.wait_idle(60), "runs still driven 60 s after cancel"
    deadline = time.monotonic() + 10
    while service.db.runs.unfinished() and time.monotonic() < deadline:
        time.sleep(0.05)
