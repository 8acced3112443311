"""Exactly once after ``kill -9``: a real server process is frozen at a point of the event
path (the event logged but not yet delivered; the call recorded but not run; the call made
but the consumer's offset not committed), killed with SIGKILL there, and a new server on
the same database finishes the work — the trigger's function runs for that event once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hexflow.events import signed_headers
from hexflow.events.faults import EVENT_LOGGED, INVOCATION_COMMITTED, OFFSET_PENDING
from hexflow.model.access import parse_scopes
from hexflow.service import Admin
from hexflow.store.service_db import ServiceDb
from tests.helpers import live, wait_for
from tests.service_env import seed_accounts

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path, db_url: str, fault: str | None = None) -> None:
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = [sys.executable, "-m", "tests.events_server", str(self.port), str(home), db_url]
        self.proc = subprocess.Popen([*args, *([fault] if fault else [])], cwd=ROOT, env=env)
        wait_for(self._up, 60, "the server to start", every=0.1)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the server exited"
        try:
            return httpx.get(f"{self.url}/metrics", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert not live(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    db_url = f"sqlite:///{tmp_path / 'service.db'}"
    db = ServiceDb(db_url)
    admin = Admin(db, actor="cli:test")
    seed_accounts(admin)
    token = admin.create_token("alice", "p1", parse_scopes("read,submit,invoke")).secret
    db.close()
    yield tmp_path / "home", db_url, token


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("fault", [EVENT_LOGGED, INVOCATION_COMMITTED, OFFSET_PENDING])
def test_kill_9_between_an_event_and_its_action(
    setup: tuple[Path, str, str], tmp_path: Path, fault: str
) -> None:
    home, db_url, token = setup
    out = tmp_path / "calls.txt"
    auth = {"Authorization": f"Bearer {token}"}
    first = Server(home, db_url, fault)
    try:
        api = httpx.Client(base_url=first.url, headers=auth, timeout=30)
        r = api.post(
            "/api/v1/functions", json={"name": "record", "import_path": "tests.events_fns:record"}
        )
        assert r.status_code == 201, r.text
        hook = api.post(
            "/api/v1/triggers",
            json={"kind": "webhook", "function": "record", "args": {"path": str(out)}},
        ).json()
        body = b'{"shot": 1}'
        headers = signed_headers(
            hook["secret"], body, timestamp=time.time(), nonce=uuid.uuid4().hex
        )
        try:  # the server freezes at the fault point: this request may never be answered
            httpx.post(f"{first.url}{hook['hook_url']}", content=body, headers=headers, timeout=3)
        except httpx.TimeoutException:
            pass
        marker = home / f"fault-{fault}"
        wait_for(marker.exists, 30, f"the server to reach {fault}")
        if fault == OFFSET_PENDING:  # the call was made: let the worker finish it
            wait_for(lambda: _lines(out), 20, "the first call")
        first.kill9()
    finally:
        first.stop()
    calls_before = _lines(out)
    assert len(calls_before) == (1 if fault == OFFSET_PENDING else 0)

    second = Server(home, db_url)
    try:
        api = httpx.Client(base_url=second.url, headers=auth, timeout=30)
        wait_for(lambda: _lines(out), 30, "the call after the restart")

        def settled() -> list[dict] | None:
            items = api.get("/api/v1/invocations").json()["items"]
            return items if items and all(i["state"] == "succeeded" for i in items) else None

        invocations = wait_for(settled, 30, "the invocation to succeed")
        time.sleep(1.0)  # a second delivery, if there were one, would land by now
        assert len(api.get("/api/v1/invocations").json()["items"]) == 1
        calls = _lines(out)
        assert len({line.split()[-1] for line in calls}) == 1  # one invocation
        assert calls[0].split()[-2] == "webhook.received"
        if fault != OFFSET_PENDING:
            assert len(calls) == 1  # and its function ran exactly once
        else:  # it had ended before the kill, but its end was not recorded: it ran again
            assert len(calls) in (1, 2) and invocations[0]["attempt"] == len(calls)
        events = api.get("/api/v1/events", params={"after": 0, "limit": 1000}).json()["items"]
        assert [e["kind"] for e in events].count("webhook.received") == 1
    finally:
        second.stop()
