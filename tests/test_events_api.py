"""GET /api/v1/events: the durable log of a caller's projects, read after any offset
(replayable), long-polled, or followed as server-sent events that resume after
Last-Event-ID."""

from __future__ import annotations

import json
import threading
import time

from tests import service_env
from tests.events_env import ALL, events_of, invoke, register
from tests.service_env import HELLO, Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def test_run_events_are_logged_per_project_and_replayable(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run = env.submit(alice, HELLO).json()
    env.wait_run(alice, run["id"])
    first = events_of(env, alice)
    kinds = [(e["subject"], e["kind"]) for e in first]
    assert kinds[0] == (run["id"], "run.running") and kinds[-1] == (run["id"], "run.succeeded")
    assert (f"{run['id']}/a", "task.succeeded") in kinds
    assert kinds.index((f"{run['id']}/a", "task.succeeded")) < kinds.index(
        (f"{run['id']}/b", "task.running")
    )
    assert all(e["project"] == "p1" for e in first)
    seqs = [e["seq"] for e in first]
    assert seqs == sorted(seqs)
    assert events_of(env, alice) == first  # reading changes nothing: replay at will
    assert events_of(env, alice, after=seqs[2]) == first[3:]
    page = env.client.get("/api/v1/events", params={"after": 0, "limit": 2}, headers=alice).json()
    assert [e["seq"] for e in page["items"]] == seqs[:2] and page["next_after"] == seqs[1]
    bob = env.auth("bob", "p2")
    assert events_of(env, bob) == []
    empty = env.client.get("/api/v1/events", headers=bob).json()
    assert empty["next_after"] >= seqs[-1]  # scanned past other projects' events
    r = env.client.get("/api/v1/events", params={"project": "p1"}, headers=bob)
    assert r.status_code == 404
    erin = env.auth("erin")  # member of p1 and p2
    assert [e["seq"] for e in events_of(env, erin)] == seqs


def test_long_poll_returns_as_soon_as_an_event_is_logged(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    head = env.client.get("/api/v1/events", headers=alice).json()["next_after"]
    timer = threading.Timer(0.5, lambda: invoke(env, alice, "add", {"x": 1}, mode="async"))
    timer.start()
    t0 = time.monotonic()
    got = env.client.get("/api/v1/events", params={"after": head, "wait": 20}, headers=alice).json()
    waited = time.monotonic() - t0
    timer.join()
    assert got["items"] and got["items"][0]["kind"] == "function.invoked"
    assert 0.3 < waited < 15


def _read_sse(env: Env, headers: dict[str, str], count: int, **params: object) -> list[dict]:
    out: list[dict] = []
    with env.client.stream("GET", "/api/v1/events/stream", params=params, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        for line in r.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                block[key] = value.strip()
            elif not line and "data" in block:
                out.append(
                    {
                        "id": int(block["id"]),
                        "event": block["event"],
                        "data": json.loads(block["data"]),
                    }
                )
                block = {}
                if len(out) == count:
                    break
    return out


def test_server_sent_events_resume_after_the_last_event_id(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run = env.submit(alice, HELLO).json()
    env.wait_run(alice, run["id"])
    logged = events_of(env, alice)
    got = _read_sse(env, alice, 3, after=0)
    assert [g["id"] for g in got] == [e["seq"] for e in logged[:3]]
    assert got[0]["event"] == "run.running" and got[0]["data"]["subject"] == run["id"]
    again = _read_sse(env, {**alice, "Last-Event-ID": str(got[-1]["id"])}, 2)
    assert [g["id"] for g in again] == [e["seq"] for e in logged[3:5]]
