"""The service under test with events settings of a test's choosing (``events_env``), and
helpers the event, function and trigger tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from hexflow.data.tiers import StorageConfig
from hexflow.events import EventsConfig
from hexflow.service import Admin
from hexflow.service.api import create_app
from hexflow.store.service_db import ServiceDb
from tests.helpers import wait_for
from tests.service_env import Env, make_config, seed_accounts, stop_runs

ALL = "read,submit,invoke"


@contextmanager
def events_env(
    tmp_path: Path,
    db_url: str,
    storage: StorageConfig | None = None,
    *,
    service: dict[str, Any] | None = None,
    **events: Any,
) -> Iterator[Env]:
    """``storage``: the server's tiers (default: those of a fresh home); ``service``: other
    ServiceConfig settings; ``events``: EventsConfig settings."""
    config = make_config(
        tmp_path, db_url, events=EventsConfig(**events), storage=storage, **(service or {})
    )
    db = ServiceDb(db_url)
    seed_accounts(Admin(db, actor="cli:test"))
    try:
        with TestClient(create_app(config)) as client:
            env = Env(client, Admin(db, actor="cli:test"), db_url)
            try:
                yield env
            finally:
                stop_runs(env.service)
    finally:
        db.close()


def register(env: Env, headers: dict[str, str], name: str, target: str, **kw: Any) -> dict:
    r = env.client.post(
        "/api/v1/functions", json={"name": name, "import_path": target, **kw}, headers=headers
    )
    assert r.status_code == 201, r.text
    body: dict = r.json()
    return body


def invoke(env: Env, headers: dict[str, str], name: str, args: Any, **params: Any) -> Any:
    return env.client.post(
        f"/api/v1/functions/{name}/invoke", json=args, headers=headers, params=params
    )


def wait_invocation(env: Env, headers: dict[str, str], inv_id: str, timeout: float = 30) -> dict:
    def ended() -> dict | None:
        got = env.client.get(f"/api/v1/invocations/{inv_id}", headers=headers).json()
        return got if got["state"] not in ("queued", "running") else None

    result: dict = wait_for(ended, timeout, f"invocation {inv_id} to end", every=0.05)
    return result


def events_of(env: Env, headers: dict[str, str], after: int = 0, **params: Any) -> list[dict]:
    r = env.client.get(
        "/api/v1/events", params={"after": after, "limit": 1000, **params}, headers=headers
    )
    assert r.status_code == 200, r.text
    items: list[dict] = r.json()["items"]
    return items


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def eventually(cond: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    return wait_for(cond, timeout, what, every=0.05)
