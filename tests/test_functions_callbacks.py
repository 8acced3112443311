"""Callback URLs of asynchronous invocations (signed POSTs, retried with backoff, durable,
only to allowed hosts) and the ``urgent`` QoS of workflows that event work submits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hexflow.client import verify_callback
from hexflow.errors import HexflowError, SpecError
from hexflow.events import EventsConfig, signed_headers
from hexflow.events.functions.callbacks import check_url, host_allowed
from hexflow.service.api import create_app
from tests import service_env
from tests.events_env import ALL, events_env, eventually, invoke, register, wait_invocation
from tests.service_env import make_config

db_url = service_env.db_url  # fixture


class Receiver:
    """An HTTP server on loopback that records the callbacks it gets; answers 500 to the
    first ``fail`` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.got: list[tuple[dict[str, str], bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.got.append((dict(self.headers.items()), body, time.monotonic()))
                failing = len(receiver.got) <= receiver.fail
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/done"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_callback_urls_are_checked() -> None:
    allowed = ("hooks.example.org", "*.lab.example")
    assert check_url("https://hooks.example.org/x?y=1", allowed)
    assert check_url("http://a.b.lab.example:8080/", allowed)
    for url in [
        "ftp://hooks.example.org/x",
        "file:///etc/passwd",
        "https://evil.example.org/",
        "https://lab.example/",  # the wildcard is for subdomains only
        "https://hooks.example.org.evil.net/",
        "https://user:pw@hooks.example.org/",
        "https://hooks.example.org:99999/",
        "not a url",
        "https:///path",
        "https://hooks.example.org/" + "x" * 3000,
    ]:
        with pytest.raises(SpecError) as err:
            check_url(url, allowed)
        assert err.value.fields["field"] == "callback", url
    assert not host_allowed("127.0.0.1", ())  # nothing is allowed by default


def test_an_async_invocation_posts_its_signed_result(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    with events_env(tmp_path, db_url, callback_hosts=("127.0.0.1",)) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        r = invoke(env, alice, "add", {"x": 2, "y": 3}, mode="async", callback=receiver.url)
        assert r.status_code == 202, r.text
        inv_id = r.json()["id"]
        secret = r.headers["x-hexflow-callback-secret"]
        got = env.client.get("/api/v1/callbacks/secret", headers=alice).json()
        assert got == {"project": "p1", "secret": secret}
        eventually(lambda: receiver.got, "the callback")
        headers, body, _ = receiver.got[0]
        sent = verify_callback(secret, headers, body)
        assert sent == wait_invocation(env, alice, inv_id)  # the shape of GET /invocations/id
        assert sent["state"] == "succeeded" and sent["result"] == 5
        assert headers["X-Hexflow-Invocation"] == inv_id
        with pytest.raises(ValueError, match="signature"):
            verify_callback("cbs_wrong", headers, body)
        # another project's secret differs; the failing function's end is posted too
        bob = env.auth("bob", "p2", ALL)
        assert env.client.get("/api/v1/callbacks/secret", headers=bob).json()["secret"] != secret
        register(env, alice, "boom", "tests.events_fns:boom")
        r = invoke(env, alice, "boom", {}, mode="async", callback=receiver.url + "?n=2")
        eventually(lambda: len(receiver.got) == 2, "the second callback")
        second = verify_callback(secret, receiver.got[1][0], receiver.got[1][1])
        assert second["state"] == "failed" and "ValueError" in str(second["error"])
        time.sleep(0.3)
        assert len(receiver.got) == 2  # delivered once each


def test_a_failing_receiver_is_retried_with_backoff(tmp_path: Path, db_url: str) -> None:
    receiver = Receiver(fail=2)
    try:
        with events_env(tmp_path, db_url, callback_hosts=("127.0.0.1",)) as env:
            alice = env.auth("alice", "p1", ALL)
            register(env, alice, "add", "tests.events_fns:add")
            r = invoke(env, alice, "add", {"x": 1}, mode="async", callback=receiver.url)
            inv_id = r.json()["id"]
            eventually(lambda: len(receiver.got) == 3, "the third attempt", timeout=30)
            times = [t for *_, t in receiver.got]
            assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 1.9  # 1 s, then 2 s
            # each attempt is signed afresh (a receiver's replay check passes them all)
            nonces = {h["X-Hexflow-Nonce"] for h, _, _ in receiver.got}
            assert len(nonces) == 3
            callbacks = env.service.events.callbacks
            state = eventually(
                lambda: (cb := callbacks.get(inv_id)) and cb.state == "delivered" and cb,
                "the delivery to be recorded",
            )
            assert state.attempts == 3 and state.last_error == "HTTP 500"
    finally:
        receiver.close()


def test_callbacks_survive_a_restart(tmp_path: Path, db_url: str, receiver: Receiver) -> None:
    """A callback due when the server stops is sent by the next server (the store has it)."""
    with events_env(tmp_path, db_url, callback_hosts=("127.0.0.1",)) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        dead = "http://127.0.0.1:9/nothing-listens"  # refused: retried later
        inv_id = invoke(env, alice, "add", {"x": 7}, mode="async", callback=dead).json()["id"]
        eventually(
            lambda: (cb := env.service.events.callbacks.get(inv_id)) and cb.attempts >= 1,
            "a failed attempt",
        )
    # the receiver moved: point the stored callback at it, as if it had come back
    from sqlalchemy import update

    from hexflow.store.events_schema import invocation_callbacks
    from hexflow.store.service_db import ServiceDb

    db = ServiceDb(db_url)
    try:
        with db.write() as conn:
            conn.execute(update(invocation_callbacks).values(url=receiver.url))
    finally:
        db.close()
    config = make_config(tmp_path, db_url, events=EventsConfig(callback_hosts=("127.0.0.1",)))
    with TestClient(create_app(config)):
        eventually(lambda: receiver.got, "the callback after the restart")
        assert json.loads(receiver.got[0][1])["id"] == inv_id


def test_an_end_the_consumer_does_not_read_is_swept(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    """The callbacks consumer reads function ends only while a callback waits; an end it
    did not read (its interest changed in that moment, or another server recorded the
    callback) is found by the sender's sweep and still delivered."""
    with events_env(tmp_path, db_url, callback_hosts=("127.0.0.1",)) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        callbacks = env.service.events.callbacks
        eventually(lambda: callbacks.kinds() == set(), "no interest while nothing waits")
        assert invoke(env, alice, "add", {"x": 1}, mode="sync").status_code == 200
        # this consumer never marks anything due: only the sweep can
        callbacks._mark_due = lambda ids: 0  # type: ignore[method-assign]
        r = invoke(env, alice, "add", {"x": 4}, mode="async", callback=receiver.url)
        assert callbacks.kinds() == {"function.finished"}  # recorded: it reads them now
        inv_id = r.json()["id"]
        eventually(lambda: receiver.got, "the swept callback", timeout=15)
        assert json.loads(receiver.got[0][1])["id"] == inv_id
        eventually(lambda: callbacks.kinds() == set(), "no interest once delivered")


def test_bad_callbacks_are_422_naming_the_field(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url, callback_hosts=("hooks.example.org",)) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        for url in [
            "http://127.0.0.1:8000/x",  # loopback is not listed
            "gopher://hooks.example.org/",
            "https://hooks.example.org@evil.net/",
            "",
            "https://hooks.example.org/" + "x" * 3000,
        ]:
            r = invoke(env, alice, "add", {"x": 1}, mode="async", callback=url)
            assert r.status_code == 422, (url, r.text)
            assert r.json()["field"].endswith("callback"), (url, r.json())
        listed = env.client.get("/api/v1/invocations", headers=alice).json()["items"]
        assert listed == []  # nothing was called
        viewer = env.auth("carol", "p1", "read")
        assert env.client.get("/api/v1/callbacks/secret", headers=viewer).status_code == 403
        bob = env.auth("bob", "p2", ALL)
        r = env.client.get("/api/v1/callbacks/secret", params={"project": "p1"}, headers=bob)
        assert r.status_code in (403, 404)


def _qos_of_run(env: service_env.Env, headers: dict[str, str], run_id: str) -> dict[str, str]:
    def tasks() -> dict[str, str] | None:
        r = env.client.get(f"/api/v1/runs/{run_id}/tasks", headers=headers)
        if r.status_code != 200 or not r.json()["items"]:
            return None
        return {t["id"]: t["qos"] for t in r.json()["items"]}

    found: dict[str, str] = eventually(tasks, f"the tasks of run {run_id}")
    return found


def _fire(env: service_env.Env, hook: dict) -> None:
    body = b"{}"
    headers = signed_headers(hook["secret"], body, timestamp=time.time())
    r = env.client.post(
        hook["hook_url"], content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code in (200, 202), r.text


def _triggered_run(env: service_env.Env, headers: dict[str, str], function: str) -> str:
    body = {"kind": "webhook", "function": function}
    hook = env.client.post("/api/v1/triggers", json=body, headers=headers).json()
    _fire(env, hook)

    def ended() -> str | None:
        items = env.client.get(
            "/api/v1/invocations", params={"function": function}, headers=headers
        ).json()["items"]
        if items and items[0]["state"] == "succeeded":
            assert items[0]["source"].startswith("event:")
            return str(items[0]["result"])
        assert not items or items[0]["state"] in ("queued", "running"), items
        return None

    run_id: str = eventually(ended, f"the triggered call of {function}")
    return run_id


def test_event_work_submits_urgent_workflows(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url) as env:
        alice = env.auth("alice", "p1", ALL)
        fn = register(env, alice, "work", "tests.events_fns:submit_work")
        assert fn["qos"] is None
        # from an event: urgent (a task that names its QoS keeps it)
        run_id = _triggered_run(env, alice, "work")
        assert _qos_of_run(env, alice, run_id) == {"a": "urgent", "b": "preempt"}
        # called directly: what the workflow says
        direct = invoke(env, alice, "work", {}).json()["result"]
        assert _qos_of_run(env, alice, direct) == {"a": "regular", "b": "preempt"}
        # the registration may name the class of its event work
        register(env, alice, "calm", "tests.events_fns:submit_work", qos="interactive")
        run_id = _triggered_run(env, alice, "calm")
        assert _qos_of_run(env, alice, run_id) == {"a": "interactive", "b": "preempt"}
        for bad in ("fast", "", 3):
            r = env.client.post(
                "/api/v1/functions",
                json={"name": "w", "import_path": "tests.events_fns:submit_work", "qos": bad},
                headers=alice,
            )
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["field"].endswith("qos"), r.json()


def test_the_sdk_passes_callbacks_and_qos(tmp_path: Path, db_url: str, receiver: Receiver) -> None:
    import hexflow as hx

    with events_env(tmp_path, db_url, callback_hosts=("127.0.0.1",)) as env:
        token = env.token("alice", "p1", ALL)
        with hx.Client("http://testserver", token, transport=env.client._transport) as client:
            fn = client.register_function("add", import_path="tests.events_fns:add", qos="regular")
            assert fn["qos"] == "regular"
            with pytest.raises(HexflowError) as failed:
                client.register_function("x", import_path="tests.events_fns:add", qos="soon")
            assert failed.value.fields["field"].endswith("qos")
            assert failed.value.fields["status"] == 422
            secret = client.callback_secret()
            call = client.invoke_async("add", {"x": 40, "y": 2}, callback=receiver.url)
            assert call.result(timeout=30) == 42
            eventually(lambda: receiver.got, "the callback")
            sent = verify_callback(secret, receiver.got[0][0], receiver.got[0][1])
            assert sent["id"] == call.id and sent["result"] == 42
            for bad in ("", "ftp://127.0.0.1/x", "http://10.1.2.3/x"):
                with pytest.raises(HexflowError) as failed:
                    client.invoke_async("add", {"x": 1}, callback=bad)
                assert failed.value.fields["field"].endswith("callback"), bad
