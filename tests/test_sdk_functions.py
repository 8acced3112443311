"""The SDK's functions API (``hexflow.Client``) against the service in-process, on SQLite
and PostgreSQL: register (import path, callable, source), list/get, invoke synchronously
(result, or ``FunctionFailed`` with the remote traceback) and asynchronously (a handle to
wait on), invocations, triggers (create, list, delete, signed webhooks), the event log
after an offset, and bad input on every one of these surfaces."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import hexflow as hx
from hexflow.client import EventPage, Invocation, signed_headers
from hexflow.errors import AuthError, Forbidden, FunctionFailed, NotFound, ServiceError, SpecError
from tests import events_fns, service_env
from tests.events_env import ALL, eventually, lines
from tests.service_env import Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def sdk(env: Env, user: str = "alice", project: str | None = "p1", **kw: Any) -> hx.Client:
    token = env.token(user, project, kw.pop("scopes", ALL))
    return hx.Client("http://testserver", token, transport=env.client._transport, **kw)


@pytest.fixture
def alice(env: Env) -> Iterator[hx.Client]:
    with sdk(env) as client:
        yield client


NORM = (
    "from pydantic import BaseModel\n"
    "class P(BaseModel):\n    x: float\n    y: float\n"
    "def norm(p: P, scale: float = 1.0) -> float:\n"
    "    return (p.x ** 2 + p.y ** 2) ** 0.5 * scale\n"
)


def test_register_list_get_and_invoke(alice: hx.Client) -> None:
    fn = alice.register_function("add", import_path="tests.events_fns:add", memory="64M")
    assert fn["version"] == 1 and fn["args_schema"]["required"] == ["x"]
    assert fn["memory"] == 64 * 2**20 and fn["kind"] == "import"
    assert alice.invoke("add", {"x": 2, "y": 40}) == 42
    # a module-level callable registers by its import path: version 2
    again = alice.register_function("add", import_path=events_fns.add, timeout="2m")
    assert (again["version"], again["target"], again["timeout"]) == (
        2,
        "tests.events_fns:add",
        120.0,
    )
    alice.register_function("norm", source=NORM, env={"MODE": "test"}, max_workers=2)
    assert alice.invoke("norm", {"p": {"x": 3, "y": 4}, "scale": 2}) == 10.0
    assert alice.invoke("add", {"x": 1}, version=1) == 1
    assert [(f["name"], f["version"]) for f in alice.functions()] == [("add", 2), ("norm", 1)]
    assert alice.function("add", version=1)["version"] == 1
    assert alice.function("norm")["env"] == {"MODE": "test"}
    assert alice.functions(project="p1") == alice.functions()
    pools = alice.function_pools()
    assert pools and all(p["workers"] >= 0 for p in pools)


def test_failures_carry_the_remote_traceback(alice: hx.Client) -> None:
    alice.register_function("boom", import_path="tests.events_fns:boom")
    with pytest.raises(FunctionFailed, match="'boom' .*failed: ValueError: bad input") as err:
        alice.invoke("boom", {"message": "bad input"})
    fields = err.value.fields
    assert fields["state"] == "failed" and fields["function"] == "boom"
    assert "raise ValueError(message)" in fields["traceback"]
    assert any("remote traceback" in n and "ValueError" in n for n in err.value.__notes__)
    assert alice.get_invocation(fields["invocation"])["state"] == "failed"
    # it pickles, as every hexflow error must (it crosses process boundaries)
    import pickle

    back = pickle.loads(pickle.dumps(err.value))
    assert isinstance(back, FunctionFailed) and back.fields == err.value.fields

    alice.register_function("nap", import_path="tests.events_fns:nap", timeout=0.5)
    with pytest.raises(FunctionFailed, match="timed_out") as slow:
        alice.invoke("nap", {"seconds": 30})
    assert slow.value.fields["state"] == "timed_out"


def test_asynchronous_calls_return_a_handle(alice: hx.Client) -> None:
    alice.register_function("nap", import_path="tests.events_fns:nap")
    handle = alice.invoke_async("nap", {"seconds": 0.3})
    assert isinstance(handle, Invocation) and handle.state == "queued"
    assert handle.wait(30) is handle and handle.done() and handle.ok
    assert handle.result() == 0.3 and handle.exception() is None
    assert repr(handle).startswith(f"<Invocation {handle.id} nap")
    # a synchronous call that outlasts the server's wait goes on polling for the result
    assert alice.invoke("nap", {"seconds": 0.4}, timeout=0.1 + 30) == 0.4
    # one that outlasts the caller's own timeout raises TimeoutError; the call goes on
    with pytest.raises(TimeoutError, match="did not end in time"):
        alice.invoke("nap", {"seconds": 1.5}, timeout=0.2)
    slow = alice.invocations(function="nap", limit=1)[0]
    assert alice.invocation(slow["id"]).wait(30).result() == 1.5
    listed = alice.invocations(function="nap")
    assert len(listed) == 3 and listed[-1]["id"] == handle.id
    assert alice.invocations(function="nap", state="succeeded", limit=2) == listed[:2]
    failing = alice.register_function("boom", import_path="tests.events_fns:boom")
    assert failing["version"] == 1
    bad = alice.invoke_async("boom", {})
    assert isinstance(bad.exception(30), FunctionFailed)
    with pytest.raises(FunctionFailed, match="ValueError: boom"):
        bad.result()
    with pytest.raises(SpecError, match="timeout"):
        bad.wait(0)


def test_triggers_webhooks_and_the_event_log(env: Env, alice: hx.Client, tmp_path: Any) -> None:
    alice.register_function("record", import_path="tests.events_fns:record")
    out = tmp_path / "calls.txt"
    head = alice.read_events().next_after
    hook = alice.create_trigger(
        "webhook", "record", args={"path": str(out), "tag": "hook"}, name="sensor"
    )
    assert hook["secret"] and hook["hook_url"] == f"/api/v1/hooks/{hook['id']}"
    sent = alice.send_webhook(hook, {"value": 21})
    assert sent["trigger"] == hook["id"] and sent["seq"] > head
    eventually(lambda: len(lines(out)) == 1, "the webhook to call the function")
    # the raw-bytes body and an explicit secret work too
    assert alice.send_webhook(hook["hook_url"], b"raw", secret=hook["secret"])["seq"] > sent["seq"]
    eventually(lambda: len(lines(out)) == 2, "the second webhook's call")
    rule = alice.create_trigger(
        "event", "record", config={"kinds": ["function.finished"], "once": True},
        args={"path": str(out), "tag": "rule"},
    )  # fmt: skip
    assert rule["secret"] is None and rule["config"]["once"] is True
    listed = {t["id"]: t for t in alice.triggers()}
    assert set(listed) == {hook["id"], rule["id"]} and listed[hook["id"]]["name"] == "sensor"
    assert listed[hook["id"]]["secret"] is None  # shown at creation only
    eventually(
        lambda: {t["id"]: t for t in alice.triggers()}[hook["id"]]["fired"] == 2,
        "the webhook trigger's statistics",
    )

    page = alice.read_events(head)
    assert isinstance(page, EventPage) and page.next_after >= sent["seq"]
    kinds = [e["kind"] for e in page.items]
    assert kinds.count("webhook.received") == 2 and "function.invoked" in kinds
    assert [e["seq"] for e in page.items] == sorted(e["seq"] for e in page.items)
    received = next(e for e in page.items if e["kind"] == "webhook.received")
    assert received["data"]["body"] == {"value": 21} and received["seq"] == sent["seq"]
    one = alice.read_events(head, limit=1)
    assert len(one.items) == 1 and one.next_after == one.items[0]["seq"]
    assert [e["seq"] for e in alice.iter_events(head)] == [
        e["seq"] for e in alice.read_events(head, limit=1000).items
    ]
    assert alice.read_events(page.next_after + 10_000, wait=0.1).items == []
    calls = alice.invocations(function="record")
    assert {c["source"] for c in calls} >= {f"event:{sent['seq']}"}

    with sdk(env, "bob", "p2") as bob:  # another project sees none of it
        assert bob.triggers() == [] and bob.read_events().items == []
        with pytest.raises(NotFound):
            bob.delete_trigger(hook["id"])
    assert alice.delete_trigger(hook["id"])["id"] == hook["id"]
    with pytest.raises(NotFound, match="no trigger"):
        alice.delete_trigger(hook["id"])
    with pytest.raises(NotFound, match="no webhook"):
        alice.send_webhook(hook, {"value": 1})
    assert [t["id"] for t in alice.triggers()] == [rule["id"]]


def test_bad_input_on_every_surface(env: Env, alice: hx.Client) -> None:
    alice.register_function("add", import_path="tests.events_fns:add")
    # registering
    with pytest.raises(SpecError, match="one of them"):
        alice.register_function("x")
    with pytest.raises(SpecError, match="one of them"):
        alice.register_function("x", import_path="a.b:c", source="def x(): pass")
    with pytest.raises(SpecError, match="memory"):
        alice.register_function("x", import_path="a.b:c", memory="lots")
    with pytest.raises(SpecError, match="timeout"):
        alice.register_function("x", import_path="a.b:c", timeout="soon")
    with pytest.raises(SpecError, match="env"):
        alice.register_function("x", import_path="a.b:c", env=["A=1"])  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="no import path"):
        alice.register_function("x", import_path=lambda: None)
    for kw, field in [
        ({"import_path": "not a path"}, "import_path"),
        ({"import_path": "tests.events_fns:nosuch"}, None),
        ({"source": "def x(:"}, None),
        ({"import_path": "a.b:c", "cpus": -1}, "cpus"),
        ({"import_path": "a.b:c", "min_workers": 5, "max_workers": 2}, "max_workers"),
    ]:
        with pytest.raises(ServiceError) as err:
            alice.register_function("x", **kw)
        assert err.value.fields["status"] == 422, kw
        if field:
            assert err.value.fields["field"] == field
    with pytest.raises(ServiceError) as named:
        alice.register_function("9 lives", import_path="a.b:c")
    assert named.value.fields["field"] == "name"
    # invoking
    with pytest.raises(SpecError, match="mapping"):
        alice.invoke("add", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="JSON"):
        alice.invoke("add", {"x": {1, 2}})
    with pytest.raises(SpecError, match="JSON"):
        alice.invoke("add", {"x": float("nan")})
    with pytest.raises(SpecError, match="timeout"):
        alice.invoke("add", {"x": 1}, timeout=0)
    with pytest.raises(SpecError, match="name"):
        alice.invoke("", {"x": 1})
    for args, field in [({"x": "two"}, "args.x"), ({}, "args.x"), ({"x": 1, "z": 2}, "args.z")]:
        with pytest.raises(ServiceError) as err:
            alice.invoke("add", args)
        assert (err.value.fields["status"], err.value.fields["field"]) == (422, field)
    with pytest.raises(NotFound):
        alice.invoke("nosuch", {})
    with pytest.raises(NotFound):  # a name cannot reach another route
        alice.invoke("../../runs", {})
    with pytest.raises(NotFound):
        alice.invoke("add", {"x": 1}, version=9)
    with pytest.raises(ServiceError) as zero:
        alice.invoke("add", {"x": 1}, version=0)
    assert zero.value.fields["status"] == 422
    with pytest.raises(NotFound):
        alice.get_invocation("nosuch")
    with pytest.raises(NotFound):
        alice.invocation("../functions")
    # triggers
    with pytest.raises(ServiceError) as kind:
        alice.create_trigger("telepathy", "add")
    assert (kind.value.fields["status"], kind.value.fields["field"]) == (422, "kind")
    with pytest.raises(ServiceError) as conf:
        alice.create_trigger("event", "add", config={"kinds": ["task.sucess"]})
    assert conf.value.fields["field"] == "config.kinds.0"
    with pytest.raises(SpecError, match="config"):
        alice.create_trigger("event", "add", config=["run.failed"])  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        alice.create_trigger("schedule", "nosuch", config={"every": 60})
    # webhooks
    hook = alice.create_trigger("webhook", "add", args={"x": 1})
    with pytest.raises(SpecError, match="secret"):
        alice.send_webhook(hook["hook_url"], {"x": 1})
    with pytest.raises(SpecError, match="webhook URL"):
        alice.send_webhook("/api/v1/runs", {"x": 1}, secret="s")
    with pytest.raises(AuthError, match="signature"):
        alice.send_webhook(hook, {"x": 1}, secret="whs_wrong")
    with pytest.raises(ValueError, match="secret"):
        signed_headers("", b"x")
    with pytest.raises(TypeError, match="bytes"):
        signed_headers("s", "text")  # type: ignore[arg-type]
    # the event log
    with pytest.raises(SpecError, match="after"):
        alice.read_events(-1)
    with pytest.raises(ServiceError) as lim:
        alice.read_events(0, limit=0)
    assert lim.value.fields["status"] == 422
    with pytest.raises(NotFound, match="no project 'p2'"):
        alice.read_events(0, project="p2")
    # scopes and projects
    with sdk(env, scopes="read") as reader, pytest.raises(Forbidden, match="invoke"):
        reader.invoke("add", {"x": 1})
    with sdk(env, "bob", "p2") as bob, pytest.raises(NotFound):
        bob.invoke("add", {"x": 1})


def test_signed_headers_match_the_documented_scheme() -> None:
    headers = signed_headers("whs_k", b'{"a":1}', timestamp=1700000000.7, nonce="n" * 16)
    mac = hmac.new(b"whs_k", b"1700000000." + b"n" * 16 + b'.{"a":1}', hashlib.sha256)
    assert headers == {
        "X-Hexflow-Timestamp": "1700000000",
        "X-Hexflow-Nonce": "n" * 16,
        "X-Hexflow-Signature": "sha256=" + mac.hexdigest(),
    }
    fresh = signed_headers("whs_k", b"")
    assert len(fresh["X-Hexflow-Nonce"]) == 32 and fresh != signed_headers("whs_k", b"")


def test_calls_are_not_retried_once_they_may_have_reached_the_server() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if len(sent) == 1:
            raise httpx.ReadTimeout("lost", request=request)
        return httpx.Response(200, json={"id": "i1", "function": "f", "state": "succeeded",
                                         "result": 1})  # fmt: skip

    with hx.Client("http://x", "t", transport=httpx.MockTransport(answer), retries=3) as c:
        with pytest.raises(ServiceError, match="cannot reach"):
            c.invoke("f", {})
        assert len(sent) == 1  # a lost answer: the call may have run; never sent again
        sent.clear()

        def refused_then_ok(request: httpx.Request) -> httpx.Response:
            sent.append(request.url.path)
            if len(sent) == 1:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(200, json={"id": "i1", "function": "f",
                                             "state": "succeeded", "result": 1})  # fmt: skip

    with hx.Client("http://x", "t", transport=httpx.MockTransport(refused_then_ok)) as c:
        assert c.invoke("f", {}) == 1 and len(sent) == 2  # never reached it: safe to retry
        sent.clear()

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(503, json={"error": "unavailable", "message": "busy"})

    with hx.Client("http://x", "t", transport=httpx.MockTransport(unavailable), retries=2) as c:
        with pytest.raises(ServiceError, match="busy"):
            c.create_trigger("webhook", "f")
        assert sent == ["POST"]
        sent.clear()
        with pytest.raises(ServiceError, match="busy"):
            c.functions()  # reads are retried
        assert sent == ["GET"] * 3
