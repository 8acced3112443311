"""The runs API against a live app (SQLite, and PostgreSQL when available): submit YAML and
JSON workflows that really run, list with filters and pages, get, tasks, cancel, errors."""

from __future__ import annotations

import json

from tests import service_env
from tests.helpers import wait_for
from tests.service_env import SLEEPER, Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def test_submit_yaml_runs_it_to_success(env: Env) -> None:
    alice = env.auth("alice", "p1")
    r = env.submit(alice)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["project"] == "p1" and run["submitted_by"] == "alice" and run["name"] == "hello"
    assert r.headers["location"] == f"/api/v1/runs/{run['id']}"
    assert run["tasks"] == {"ready": 1, "pending": 1}  # stored before the answer
    final = env.wait_run(alice, run["id"])
    assert final["state"] == "succeeded" and final["tasks"] == {"succeeded": 2}
    tasks = env.client.get(f"/api/v1/runs/{run['id']}/tasks", headers=alice).json()
    assert [t["id"] for t in tasks["items"]] == ["a", "b"]
    assert tasks["items"][1]["deps"] == ["a"] and tasks["items"][0]["exit_code"] == 0
    assert tasks["next_cursor"] is None


def test_submit_json_with_params(env: Env) -> None:
    alice = env.auth("alice", "p1")
    doc = {
        "name": "js",
        "params": {"word": "x"},
        "tasks": {"say": {"command": ["echo", "${word}"]}},
    }
    r = env.client.post(
        "/api/v1/runs",
        content=json.dumps(doc),
        headers={**alice, "Content-Type": "application/json"},
        params={"param": "word=hello"},
    )
    assert r.status_code == 201, r.text
    assert env.wait_run(alice, r.json()["id"])["state"] == "succeeded"


def test_a_failing_task_fails_the_run(env: Env) -> None:
    alice = env.auth("alice", "p1")
    body = b"name: bad\ntasks:\n  x: {command: [python3, -c, 'raise SystemExit(3)']}\n"
    run_id = env.submit(alice, body).json()["id"]
    assert env.wait_run(alice, run_id)["state"] == "failed"
    task = env.client.get(f"/api/v1/runs/{run_id}/tasks", headers=alice).json()["items"][0]
    assert task["state"] == "failed" and task["exit_code"] == 3


def test_list_filters_and_pages(env: Env) -> None:
    erin = env.auth("erin")  # member of p1 and p2, unbound token
    ids = []
    for project in ("p1", "p1", "p2"):
        r = env.submit(erin, project=project)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    other = env.submit(erin, SLEEPER.replace(b"60", b"0"), project="p2").json()["id"]
    for run_id in [*ids, other]:
        env.wait_run(erin, run_id)
    everything = env.client.get("/api/v1/runs", headers=erin).json()["items"]
    assert [r["id"] for r in everything] == [other, *reversed(ids)]  # newest first
    p1 = env.client.get("/api/v1/runs", params={"project": "p1"}, headers=erin).json()
    assert {r["id"] for r in p1["items"]} == set(ids[:2])
    named = env.client.get("/api/v1/runs", params={"name": "sleeper"}, headers=erin).json()
    assert [r["id"] for r in named["items"]] == [other]
    ok = env.client.get("/api/v1/runs", params={"state": "succeeded"}, headers=erin).json()
    assert len(ok["items"]) == 4
    assert env.client.get("/api/v1/runs", params={"state": "failed"}, headers=erin).json() == {
        "items": [],
        "next_cursor": None,
    }
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = env.client.get("/api/v1/runs", params=params, headers=erin).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [r["id"] for r in everything]


def test_task_pages(env: Env) -> None:
    alice = env.auth("alice", "p1")
    tasks = "\n".join(f"  t{i}: {{command: 'true'}}" for i in range(7))
    run_id = env.submit(alice, f"name: many\ntasks:\n{tasks}\n".encode()).json()["id"]
    env.wait_run(alice, run_id)
    url = f"/api/v1/runs/{run_id}/tasks"
    first = env.client.get(url, params={"limit": 4}, headers=alice).json()
    rest = env.client.get(
        url, params={"limit": 4, "cursor": first["next_cursor"]}, headers=alice
    ).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == [f"t{i}" for i in range(7)]
    assert rest["next_cursor"] is None
    failed = env.client.get(url, params={"state": "failed"}, headers=alice).json()
    assert failed["items"] == []


def test_cancel_a_running_run(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice, SLEEPER).json()["id"]

    def nap_running() -> bool:
        items = env.client.get(f"/api/v1/runs/{run_id}/tasks", headers=alice).json()["items"]
        return items[0]["state"] == "running"

    wait_for(nap_running, 30, "the task to start", every=0.1)
    r = env.client.post(f"/api/v1/runs/{run_id}/cancel", headers=alice)
    assert r.status_code == 200, r.text
    final = env.wait_run(alice, run_id, timeout=30)
    assert final["state"] == "cancelled" and final["tasks"] == {"cancelled": 1}
    again = env.client.post(f"/api/v1/runs/{run_id}/cancel", headers=alice)
    assert again.status_code == 200 and again.json()["state"] == "cancelled"
    entries = env.service.db.log.entries(projects=None, action="run.cancel")
    assert [e.outcome for e in entries] == ["ok", "ok"] and entries[0].detail == "already cancelled"


def test_get_unknown_run_is_404_with_hint(env: Env) -> None:
    alice = env.auth("alice", "p1")
    for r in (
        env.client.get("/api/v1/runs/nope", headers=alice),
        env.client.get("/api/v1/runs/nope/tasks", headers=alice),
        env.client.post("/api/v1/runs/nope/cancel", headers=alice),
    ):
        assert r.status_code == 404
        body = r.json()
        assert body["error"] == "not_found" and "nope" in body["message"] and body["hint"]


def test_prefixes_are_not_resolved(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    assert env.client.get(f"/api/v1/runs/{run_id[:6]}", headers=alice).status_code == 404


def test_submit_is_audited(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    env.submit(alice, b"name: [")
    entries = env.service.db.log.entries(projects=["p1"], action="run.submit")
    assert [(e.outcome, e.status) for e in entries] == [("error", 400), ("ok", 201)]
    ok = entries[1]
    assert ok.actor == "alice" and ok.target == run_id and ok.source == "testclient"


def test_metrics_count_requests_and_runs(env: Env) -> None:
    alice = env.auth("alice", "p1")
    env.submit(alice)
    text = env.client.get("/metrics").text
    assert 'hexflow_http_requests_total{method="POST",route="/api/v1/runs",status="201"} 1.0' in (
        text
    )
    assert "hexflow_runs_submitted_total 1.0" in text and "hexflow_runs_active" in text


def test_root_page_links_to_the_docs(env: Env) -> None:
    page = env.client.get("/")
    assert page.status_code == 200 and 'href="/docs"' in page.text
    assert env.client.get("/docs").status_code == 200
