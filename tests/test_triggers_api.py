"""Triggers over HTTP: signed, replay-protected webhooks; file arrival (marker file or a
stable size); schedules; "on event X call function Y" rules. Every firing goes through
the event log: the event first, then one call per trigger and event."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from hexflow.events import signed_headers
from tests import service_env
from tests.events_env import ALL, events_of, eventually, invoke, lines, register
from tests.service_env import HELLO, Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def _trigger(env: Env, headers: dict[str, str], **body: object) -> dict:
    r = env.client.post("/api/v1/triggers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created: dict = r.json()
    return created


def _post_hook(env: Env, hook: dict, body: bytes, **kw: object) -> object:
    headers = signed_headers(hook["secret"], body, timestamp=time.time(), **kw)  # type: ignore[arg-type]
    return env.client.post(
        hook["hook_url"], content=body, headers={**headers, "Content-Type": "application/json"}
    )


def test_a_signed_webhook_calls_its_function_once(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    out = tmp_path / "calls.txt"
    hook = _trigger(
        env, alice, kind="webhook", function="record", args={"path": str(out), "tag": "hook"}
    )
    assert hook["secret"].startswith("whs_") and hook["hook_url"] == f"/api/v1/hooks/{hook['id']}"
    body = b'{"sample": 17}'
    nonce = uuid.uuid4().hex
    r = _post_hook(env, hook, body, nonce=nonce)
    assert r.status_code == 202, r.text  # type: ignore[attr-defined]
    seq = r.json()["seq"]  # type: ignore[attr-defined]
    eventually(lambda: lines(out), "the webhook's function")
    assert lines(out)[0].startswith(f"hook {seq} webhook.received ")
    assert len(lines(out)) == 1
    logged = [e for e in events_of(env, alice) if e["seq"] == seq][0]
    assert logged["data"]["body"] == {"sample": 17} and logged["data"]["trigger"] == hook["id"]
    # a replay of the very same request is refused, and calls nothing
    again = env.client.post(
        hook["hook_url"],
        content=body,
        headers={
            **signed_headers(hook["secret"], body, timestamp=time.time(), nonce=nonce),
            "Content-Type": "application/json",
        },
    )
    assert again.status_code == 401 and "replayed" in again.json()["message"]
    listed = eventually(  # the statistics are written in batches (0.25 s)
        lambda: [t for t in env.client.get("/api/v1/triggers", headers=alice).json()["items"]
                 if t["fired"] == 1],
        "the firing to be recorded",
    )  # fmt: skip
    assert listed[0]["secret"] is None
    time.sleep(0.3)
    assert len(lines(out)) == 1


def test_unsigned_forged_and_stale_webhooks_are_refused(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    hook = _trigger(env, alice, kind="webhook", function="add")
    url = hook["hook_url"]
    body = b'{"x": 1}'
    assert env.client.post(url, content=body).status_code == 401
    forged = signed_headers("whs_not-the-secret", body, timestamp=time.time())
    assert env.client.post(url, content=body, headers=forged).status_code == 401
    stale = signed_headers(hook["secret"], body, timestamp=time.time() - 3600)
    r = env.client.post(url, content=body, headers=stale)
    assert r.status_code == 401 and r.json()["field"] == "X-Hexflow-Timestamp"
    tampered = signed_headers(hook["secret"], body, timestamp=time.time())
    assert env.client.post(url, content=b'{"x": 2}', headers=tampered).status_code == 401
    assert env.client.post("/api/v1/hooks/nosuchhook", content=body).status_code == 404
    assert not [e for e in events_of(env, alice) if e["kind"] == "webhook.received"]


def test_a_webhook_json_body_becomes_the_arguments(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    hook = _trigger(env, alice, kind="webhook", function="add", args={"y": 100})
    r = _post_hook(env, hook, b'{"x": 5, "ignored": true}')
    seq = r.json()["seq"]  # type: ignore[attr-defined]

    def called() -> dict | None:
        items = env.client.get("/api/v1/invocations", headers=alice).json()["items"]
        return items[0] if items and items[0]["state"] == "succeeded" else None

    inv = eventually(called, "the call")
    assert inv["result"] == 105 and inv["source"] == f"event:{seq}"
    assert inv["caller"] == f"trigger:{hook['id']}"


def test_file_arrival_with_a_marker_file(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    inbox, out = tmp_path / "inbox", tmp_path / "calls.txt"
    inbox.mkdir()
    (inbox / "old.h5").write_bytes(b"x")  # there before: its marker never comes
    _trigger(
        env,
        alice,
        kind="file",
        function="record",
        config={"path": str(inbox), "pattern": "*.h5", "marker": ".done"},
        args={"path": str(out), "tag": "file"},
    )
    time.sleep(0.3)
    (inbox / "scan1.h5").write_bytes(b"data" * 1000)
    time.sleep(0.5)
    assert lines(out) == []  # not complete until its marker appears
    (inbox / "scan1.h5.done").touch()
    eventually(lambda: lines(out), "the arrival")
    arrived = [e for e in events_of(env, alice) if e["kind"] == "file.arrived"]
    assert [e["data"]["name"] for e in arrived] == ["scan1.h5"]
    assert arrived[0]["data"]["size"] == 4000
    (inbox / "other.txt.done").touch()  # does not match the pattern
    time.sleep(0.4)
    assert len(lines(out)) == 1


def test_file_arrival_when_the_size_is_stable(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    inbox, out = tmp_path / "inbox", tmp_path / "calls.txt"
    _trigger(
        env,
        alice,
        kind="file",
        function="record",
        config={"path": str(inbox), "stable_for": 0.3},
        args={"path": str(out), "tag": "file"},
    )
    eventually(inbox.is_dir, "the watched directory")
    time.sleep(0.3)
    with open(inbox / "growing.dat", "wb") as f:
        for _ in range(4):  # written over 0.6 s, never still for 0.3 s
            f.write(b"x" * 100)
            f.flush()
            time.sleep(0.15)
    eventually(lambda: lines(out), "the arrival")
    arrived = [e for e in events_of(env, alice) if e["kind"] == "file.arrived"]
    assert len(arrived) == 1 and arrived[0]["data"]["size"] == 400


def test_schedules_fire_through_the_log(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    out = tmp_path / "ticks.txt"
    t = _trigger(
        env,
        alice,
        kind="schedule",
        function="record",
        config={"every": 0.3},
        args={"path": str(out), "tag": "tick"},
    )
    eventually(lambda: len(lines(out)) >= 3, "three ticks")
    env.client.delete(f"/api/v1/triggers/{t['id']}", headers=alice)
    fired = [e for e in events_of(env, alice) if e["kind"] == "schedule.fired"]
    ticks = [e["data"]["tick"] for e in fired]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    assert all(abs((b - a) - 0.3) < 1e-6 for a, b in zip(ticks, ticks[1:], strict=False))
    time.sleep(0.8)
    count = len(lines(out))
    time.sleep(0.7)
    assert len(lines(out)) == count  # deleted: no more ticks


def test_an_event_rule_calls_a_function_when_a_run_ends(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    out = tmp_path / "ends.txt"
    _trigger(
        env,
        alice,
        kind="event",
        function="record",
        config={"kinds": ["run.succeeded", "run.failed"]},
        args={"path": str(out), "tag": "end"},
    )
    run = env.submit(alice, HELLO).json()
    env.wait_run(alice, run["id"])
    eventually(lambda: lines(out), "the rule")
    assert lines(out)[0].split()[2] == "run.succeeded"
    bob = env.auth("bob", "p2", ALL)
    other = env.submit(bob, HELLO).json()  # another project's run does not fire it
    env.wait_run(bob, other["id"])
    time.sleep(0.5)
    assert len(lines(out)) == 1


def test_trigger_input_errors_and_ownership(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    for body, status, field in [
        ({"kind": "nope", "function": "add"}, 422, "kind"),
        (
            {"kind": "schedule", "function": "add", "config": {"cron": "whenever"}},
            422,
            "config.cron",
        ),
        (
            {"kind": "event", "function": "add", "config": {"kinds": ["run.done"]}},
            422,
            "config.kinds.0",
        ),
        ({"kind": "webhook", "function": "missing"}, 404, None),
    ]:
        r = env.client.post("/api/v1/triggers", json=body, headers=alice)
        assert r.status_code == status, (body, r.text)
        assert r.json().get("field") == field
    hook = _trigger(env, alice, kind="webhook", function="add")
    bob = env.auth("bob", "p2", ALL)
    assert env.client.delete(f"/api/v1/triggers/{hook['id']}", headers=bob).status_code == 404
    assert env.client.get("/api/v1/triggers", headers=bob).json()["items"] == []
    viewer = env.auth("carol", "p1", "read")
    assert env.client.delete(f"/api/v1/triggers/{hook['id']}", headers=viewer).status_code == 403
    assert env.client.delete(f"/api/v1/triggers/{hook['id']}", headers=alice).status_code == 200
    assert _post_hook(env, hook, b"{}").status_code == 404  # type: ignore[attr-defined]
    actions = [
        e["action"]
        for e in env.client.get("/api/v1/audit", headers=env.auth("dave", "p1", "admin")).json()[
            "items"
        ]
    ]
    assert "trigger.create" in actions and "trigger.delete" in actions
    assert "function.register" in actions
    assert invoke(env, alice, "add", {"x": 1}).status_code == 200


def test_a_trigger_whose_owner_may_no_longer_invoke_calls_nothing(env: Env) -> None:
    from hexflow.model.access import Role

    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    hook = _trigger(env, alice, kind="webhook", function="add", args={"y": 1})
    env.admin.set_member("p1", "alice", Role.VIEWER)  # alice may only read p1 now
    r = _post_hook(env, hook, b'{"x": 2}')
    assert r.status_code == 202  # the event is logged (the sender holds the secret) ...
    listed = eventually(  # ... but calls nothing, and the trigger says why
        lambda: [t for t in env.client.get("/api/v1/triggers", headers=alice).json()["items"]
                 if t["fired"] == 1],
        "the refused firing to be recorded",
    )  # fmt: skip
    assert "may no longer invoke" in (listed[0]["last_error"] or ""), listed[0]
    calls = env.client.get("/api/v1/invocations?function=add", headers=alice).json()["items"]
    assert calls == []
