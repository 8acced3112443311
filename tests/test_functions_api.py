"""The function gateway over HTTP: register (import path, uploaded source, versions),
invoke synchronously and asynchronously, argument checks (422 naming the field), payload
limit (413), rate limit (429 + Retry-After), failures with tracebacks, timeouts, project
isolation, warm pools that scale, and the context's intents (submit, on completion)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from tests import service_env
from tests.events_env import (
    ALL,
    events_env,
    events_of,
    eventually,
    invoke,
    lines,
    register,
    wait_invocation,
)
from tests.service_env import Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def test_register_and_invoke_by_import_path(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    fn = register(env, alice, "add", "tests.events_fns:add")
    assert fn["version"] == 1 and fn["args_schema"]["required"] == ["x"]
    assert fn["args_schema"]["properties"]["y"]["default"] == 0
    r = invoke(env, alice, "add", {"x": 2, "y": 40})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["state"] == "succeeded" and out["result"] == 42 and out["caller"] == "alice"
    assert out["started_at"] >= out["created_at"] and out["duration"] >= 0
    # a second registration is version 2; version 1 stays callable
    assert register(env, alice, "add", "tests.events_fns:nap")["version"] == 2
    assert invoke(env, alice, "add", {"x": 1}, version=1).json()["result"] == 1
    assert invoke(env, alice, "add", {"seconds": 0}).json()["result"] == 0
    listed = env.client.get("/api/v1/functions", headers=alice).json()["items"]
    assert [(f["name"], f["version"]) for f in listed] == [("add", 2)]
    kinds = [e["kind"] for e in events_of(env, alice)]
    assert kinds.count("function.invoked") == 3 and kinds.count("function.finished") == 3


def test_uploaded_source_gets_typed_arguments(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    source = (
        "from pydantic import BaseModel\n"
        "class P(BaseModel):\n    x: float\n    y: float\n"
        "def norm(p: P, scale: float = 1.0) -> dict:\n"
        "    return {'norm': (p.x ** 2 + p.y ** 2) ** 0.5 * scale, 'type': type(p).__name__}\n"
    )
    r = env.client.post("/api/v1/functions", json={"name": "norm", "source": source}, headers=alice)
    assert r.status_code == 201, r.text
    assert "p" in r.json()["args_schema"]["properties"]
    out = invoke(env, alice, "norm", {"p": {"x": 3, "y": 4}, "scale": 2}).json()
    assert out["result"] == {"norm": 10.0, "type": "P"}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"x": "two"}, "args.x"),
        ({}, "args.x"),
        ({"x": 1, "z": 2}, "args.z"),
        ([1, 2], "args"),
    ],
)
def test_bad_arguments_are_422_naming_the_field(env: Env, args: object, field: str) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    r = invoke(env, alice, "add", args)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["hint"]
    assert not any(e["kind"] == "function.invoked" for e in events_of(env, alice))


def test_bad_registrations_are_422(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    for body, field in [
        ({"name": "f", "import_path": "tests.events_fns:nothing"}, "import_path"),
        ({"name": "f", "import_path": "no.such.module:f"}, "import_path"),
        ({"name": "f", "source": "def f(:\n"}, "source"),
        ({"name": "f", "source": "def g(): pass\n"}, "source"),
        ({"name": "f"}, "import_path"),
        ({"name": "f", "import_path": "tests.events_fns:add", "timeout": -1}, "timeout"),
        ({"name": "9f", "import_path": "tests.events_fns:add"}, "name"),
    ]:
        r = env.client.post("/api/v1/functions", json=body, headers=alice)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    bad = env.client.post("/api/v1/functions/add/invoke", content=b"{not json", headers=alice)
    assert bad.status_code in (404, 422)


def test_failures_keep_their_traceback_and_timeouts_stop_the_function(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "boom", "tests.events_fns:boom")
    out = invoke(env, alice, "boom", {"message": "bad input"}).json()
    assert out["state"] == "failed" and out["error"] == "ValueError: bad input"
    assert "raise ValueError(message)" in out["traceback"]
    register(env, alice, "nap", "tests.events_fns:nap", timeout=0.5)
    out = invoke(env, alice, "nap", {"seconds": 30}).json()
    assert out["state"] == "timed_out" and "0.5 s" in out["error"]
    # the pool replaced the killed worker: calls run again (once it has booted; the
    # timeout counts from dispatch, so a call may time out while the new worker boots)
    eventually(
        lambda: invoke(env, alice, "nap", {"seconds": 0}).json()["state"] == "succeeded",
        "a call to succeed after the timeout",
    )


def test_asynchronous_invocations_are_polled(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "nap", "tests.events_fns:nap")
    r = invoke(env, alice, "nap", {"seconds": 0.3}, mode="async")
    assert r.status_code == 202 and r.headers["location"] == f"/api/v1/invocations/{r.json()['id']}"
    assert r.json()["state"] == "queued"
    done = wait_invocation(env, alice, r.json()["id"])
    assert done["state"] == "succeeded" and done["result"] == 0.3
    # a synchronous call that outlasts its wait answers 202 and goes on
    slow = invoke(env, alice, "nap", {"seconds": 1.0}, wait=0.1)
    assert slow.status_code == 202
    assert wait_invocation(env, alice, slow.json()["id"])["state"] == "succeeded"
    page = env.client.get("/api/v1/invocations", params={"function": "nap"}, headers=alice)
    assert [i["id"] for i in page.json()["items"]] == [slow.json()["id"], r.json()["id"]]


def test_projects_see_and_call_only_their_functions(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    inv = invoke(env, alice, "add", {"x": 1}).json()
    bob = env.auth("bob", "p2", ALL)
    assert invoke(env, bob, "add", {"x": 1}).status_code == 404
    assert invoke(env, bob, "add", {"x": 1}, project="p1").status_code == 404
    assert env.client.get(f"/api/v1/invocations/{inv['id']}", headers=bob).status_code == 404
    assert env.client.get("/api/v1/functions", headers=bob).json()["items"] == []
    assert events_of(env, bob) == []
    viewer = env.auth("carol", "p1", "read,invoke")
    assert invoke(env, viewer, "add", {"x": 1}).status_code == 403  # a viewer's role
    reader = env.auth("alice", "p1", "read")
    r = invoke(env, reader, "add", {"x": 1})
    assert r.status_code == 403 and "invoke" in r.json()["message"]


def test_payload_limit_and_rate_limit(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url, max_payload_bytes=1000, rate=1.0, burst=2) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        big = invoke(env, alice, "add", {"x": 1, "pad": "x" * 2000})
        assert big.status_code == 413 and big.json()["error"] == "too_large"
        assert invoke(env, alice, "add", {"x": 1}).status_code == 200
        assert invoke(env, alice, "add", {"x": 1}).status_code == 200
        limited = invoke(env, alice, "add", {"x": 1})
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        bob = env.auth("bob", "p2", ALL)  # another project has its own budget
        register(env, bob, "add", "tests.events_fns:add")
        assert invoke(env, bob, "add", {"x": 1}).status_code == 200


def test_pools_grow_with_queued_calls_and_shrink_when_idle(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url, idle_after=0.5) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "nap", "tests.events_fns:pid", min_workers=1, max_workers=3)
        register(env, alice, "slow", "tests.events_fns:nap", min_workers=1, max_workers=3)

        def pools() -> list[dict]:
            got: list[dict] = env.client.get("/api/v1/function-pools", headers=alice).json()
            return got

        eventually(lambda: pools() and pools()[0]["workers"] == 1, "the warm pool")
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            calls = [
                ex.submit(invoke, env, alice, "slow", {"seconds": 1.0}, mode="async")
                for _ in range(6)
            ]
            ids = [c.result().json()["id"] for c in calls]
        eventually(lambda: pools()[0]["workers"] == 3, "the pool to grow to its maximum")
        assert pools()[0]["workers"] <= 3
        for inv_id in ids:
            assert wait_invocation(env, alice, inv_id)["state"] == "succeeded"
        eventually(lambda: pools()[0]["workers"] == 1, "the pool to shrink back", timeout=20)
        pids = {invoke(env, alice, "nap", {}).json()["result"] for _ in range(3)}
        assert len(pids) == 1  # warm: the same worker serves consecutive calls


def test_a_function_submits_a_workflow_and_reacts_to_its_completion(
    env: Env, tmp_path: Path
) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    register(env, alice, "watch", "tests.events_fns:submit_and_watch")
    out_file = tmp_path / "done.txt"
    out = invoke(env, alice, "watch", {"path": str(out_file)}).json()
    assert out["state"] == "succeeded", out
    run_id = out["result"]
    run = env.wait_run(alice, run_id)
    assert run["state"] == "succeeded" and run["project"] == "p1"
    eventually(lambda: lines(out_file), "the completion function to run")
    assert len(lines(out_file)) == 1 and lines(out_file)[0].split()[2] == "run.succeeded"

    def firings() -> list:  # the triggers' statistics are written in batches (0.25 s)
        items = env.client.get("/api/v1/triggers", headers=alice).json()["items"]
        got = [(t["kind"], t["enabled"], t["fired"]) for t in items]
        return got if got == [("event", False, 1)] else []

    eventually(firings, "the one-shot trigger to be recorded as fired and disabled")
