"""Server-sent event streams, read with httpx streaming: a run's task and run state
changes (``/runs/{id}/events``) and a task's log as it is written (``logs?follow=true``),
plus the non-streaming logs routes; bad input and other projects' runs refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import service_env
from tests.service_env import SLEEPER, Env

db_url, env = service_env.db_url, service_env.env  # fixtures

TALKER = b"""name: talker
tasks:
  talk:
    command: [sh, -c, 'for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.3; done']
"""


def read_events(env: Env, path: str, headers: dict[str, str], **params: Any) -> list[dict]:
    """Every event of a stream (until the server ends it), as {"event", "data", "id"}."""
    events: list[dict] = []
    with env.client.stream("GET", path, headers=headers, params=params) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in r.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return events


def test_run_events_snapshot_changes_and_end(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    events = read_events(env, f"/api/v1/runs/{run_id}/events", alice, poll=0.05)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "end" and events[-1]["data"]["state"] == "succeeded"
    assert "run" in kinds
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    last = {}
    for e in events:
        if e["event"] == "task":
            last[e["data"]["task_id"]] = e["data"]["state"]
    assert last == {"a": "succeeded", "b": "succeeded"}
    # a stream opened after the end sends the snapshot, then ends at once
    again = read_events(env, f"/api/v1/runs/{run_id}/events", alice)
    assert [e["event"] for e in again] == ["task", "task", "run", "end"]


def test_follow_a_tasks_log_until_it_ends(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice, TALKER).json()["id"]
    events = read_events(env, f"/api/v1/runs/{run_id}/tasks/talk/logs", alice, follow="true")
    out = "".join(e["data"]["text"] for e in events if e["event"] == "stdout")
    err = "".join(e["data"]["text"] for e in events if e["event"] == "stderr")
    assert out == "out 1\nout 2\nout 3\n" and err == "err 1\nerr 2\nerr 3\n"
    assert events[-1]["event"] == "end" and events[-1]["data"]["exit_code"] == 0
    whole = env.client.get(f"/api/v1/runs/{run_id}/tasks/talk/logs", headers=alice).json()
    assert (whole["stdout"], whole["stderr"], whole["truncated"]) == (out, err, False)
    tail = env.client.get(
        f"/api/v1/runs/{run_id}/tasks/talk/logs", headers=alice, params={"tail": 6}
    ).json()
    assert (tail["stdout"], tail["truncated"]) == ("out 3\n", True)
    page = env.client.get(f"/api/v1/runs/{run_id}/logs", headers=alice).json()
    assert [i["task_id"] for i in page["items"]] == ["talk"] and page["next_cursor"] is None


def test_run_logs_pages(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    env.wait_run(alice, run_id)
    first = env.client.get(f"/api/v1/runs/{run_id}/logs", headers=alice, params={"limit": 1})
    body = first.json()
    assert [i["stdout"] for i in body["items"]] == ["hi\n"]
    rest = env.client.get(
        f"/api/v1/runs/{run_id}/logs",
        headers=alice,
        params={"limit": 1, "cursor": body["next_cursor"]},
    ).json()
    assert [i["stdout"] for i in rest["items"]] == ["b\n"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/events", {"poll": 0}, "query.poll"),
        ("/events", {"poll": "soon"}, "query.poll"),
        ("/tasks/a/logs", {"attempt": 0}, "query.attempt"),
        ("/tasks/a/logs", {"attempt": 7}, "attempt"),
        ("/tasks/a/logs", {"attempt": 7, "follow": "true"}, "attempt"),
        ("/tasks/a/logs", {"tail": -1}, "query.tail"),
        ("/tasks/a/logs", {"follow": "maybe"}, "query.follow"),
        ("/logs", {"limit": 0}, "query.limit"),
        ("/logs", {"cursor": "%%%"}, "cursor"),
    ],
)
def test_bad_stream_parameters(env: Env, path: str, params: dict, field: str) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    env.wait_run(alice, run_id)
    r = env.client.get(f"/api/v1/runs/{run_id}{path}", headers=alice, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["hint"]


def test_streams_of_another_projects_run_do_not_exist(env: Env) -> None:
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    run_id = env.submit(alice, SLEEPER).json()["id"]
    for path, params in [
        (f"/api/v1/runs/{run_id}/events", {}),
        (f"/api/v1/runs/{run_id}/logs", {}),
        (f"/api/v1/runs/{run_id}/tasks/nap/logs", {}),
        (f"/api/v1/runs/{run_id}/tasks/nap/logs", {"follow": "true"}),
    ]:
        r = env.client.get(path, headers=bob, params=params)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] == "not_found" and "sleeper" not in r.text
    r = env.client.get(f"/api/v1/runs/{run_id}/tasks/nosuch/logs", headers=alice)
    assert r.status_code == 404 and "nosuch" in r.json()["message"]
    env.client.post(f"/api/v1/runs/{run_id}/cancel", headers=alice)
    env.wait_run(alice, run_id)
