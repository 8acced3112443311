"""The native routes the SDK adds (one task: get, cancel, result; sites; queue): every
one refuses missing, forged and under-scoped credentials, keeps other projects' runs
invisible, and names the input at fault."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest

from hexflow.service.api import PUBLIC_PATHS
from tests import service_env
from tests.helpers import wait_for
from tests.service_env import HELLO, SLEEPER, Env

db_url, env = service_env.db_url, service_env.env  # fixtures

NEW_ROUTES = [
    ("GET", "/api/v1/runs/{run}/tasks/a"),
    ("POST", "/api/v1/runs/{run}/tasks/a/cancel"),
    ("GET", "/api/v1/runs/{run}/tasks/a/result"),
    ("GET", "/api/v1/runs/{run}/tasks/a/logs"),
    ("GET", "/api/v1/runs/{run}/logs"),
    ("GET", "/api/v1/runs/{run}/events"),
    ("GET", "/api/v1/sites"),
    ("GET", "/api/v1/sites/local"),
    ("GET", "/api/v1/queue"),
]


def test_new_routes_need_a_token_with_the_scope(env: Env) -> None:
    documented = set(env.client.app.openapi()["paths"])  # type: ignore[attr-defined]
    for _, path in NEW_ROUTES:
        template = path.replace("{run}", "{run_id}").replace("/tasks/a", "/tasks/{task_id}")
        template = template.replace("/local", "/{name}")
        assert template in documented and template not in PUBLIC_PATHS, template
    invoke_only = env.auth("dave", "p1", "invoke")
    for method, path in NEW_ROUTES:
        url = path.format(run="somerun")
        for headers in ({}, {"Authorization": "Bearer hxt_forged"}):
            r = env.client.request(method, url, headers=headers)
            assert r.status_code == 401 and r.json()["hint"], (method, url, r.text)
        r = env.client.request(method, url, headers=invoke_only)
        assert r.status_code == 403 and "scope" in r.json()["message"], (method, url)


def test_another_projects_tasks_do_not_exist(env: Env) -> None:
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    run_id = env.submit(alice, SLEEPER).json()["id"]
    for method, path in NEW_ROUTES[:6]:
        url = path.format(run=run_id).replace("/tasks/a", "/tasks/nap")
        r = env.client.request(method, url, headers=bob)
        assert r.status_code == 404, (method, url, r.text)
        assert "sleeper" not in r.text and "nap'" not in r.text
    queue = env.client.get("/api/v1/queue", headers=bob).json()["items"]
    assert all(row["run_id"] != run_id for row in queue)
    sites = env.client.get("/api/v1/sites", headers=bob).json()["items"]
    assert run_id not in str(sites) and "sleeper" not in str(sites)
    carol = env.auth("carol", "p1", "read,submit")  # a viewer of p1
    assert env.client.get(f"/api/v1/runs/{run_id}/tasks/nap", headers=carol).status_code == 200
    r = env.client.post(f"/api/v1/runs/{run_id}/tasks/nap/cancel", headers=carol)
    assert r.status_code == 403
    r = env.client.post(f"/api/v1/runs/{run_id}/tasks/nap/cancel", headers=alice)
    assert r.status_code == 200 and r.json()["id"] == "nap"
    env.wait_run(alice, run_id)
    audit = env.service.db.log.entries(projects=None, action="task.cancel")
    assert {(e.actor, e.outcome, e.project) for e in audit} == {
        ("bob", "denied", None),  # nothing of p1 recorded against bob
        ("carol", "denied", "p1"),
        ("alice", "ok", "p1"),
    }


def test_task_result_and_get(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice, SLEEPER).json()["id"]
    r = env.client.get(f"/api/v1/runs/{run_id}/tasks/nap/result", headers=alice)
    assert r.status_code == 409 and "has not ended" in r.json()["message"]
    env.client.post(f"/api/v1/runs/{run_id}/cancel", headers=alice)
    env.wait_run(alice, run_id)
    done = env.submit(alice, HELLO).json()["id"]
    env.wait_run(alice, done)
    got = env.client.get(f"/api/v1/runs/{done}/tasks/b", headers=alice).json()
    assert (got["id"], got["state"], got["deps"]) == ("b", "succeeded", ["a"])
    out = env.client.get(f"/api/v1/runs/{done}/tasks/b/result", headers=alice).json()
    assert out["state"] == "succeeded" and out["exit_code"] == 0
    assert pickle.loads(base64.b64decode(out["result"])) == 0  # a shell task's "result"
    r = env.client.get(f"/api/v1/runs/{done}/tasks/zzz", headers=alice)
    assert r.status_code == 404 and r.json()["hint"]


def test_sites_and_queue(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice, SLEEPER).json()["id"]

    def running() -> Any:
        site = env.client.get("/api/v1/sites/local", headers=alice).json()
        return site if site["queue"]["tasks_running"] == 1 else None

    site = wait_for(running, 30, "the sleeper to hold a cpu")
    assert site["kind"] == "local" and site["state"] == "active"
    assert site["utilization"]["cpus"] == 1.0 and site["nodes"][0]["cpus_used"] == 1.0
    assert site["queue"]["runs_active"] == 1
    chain = (
        b"name: chain\ntasks:\n  first: {command: [sleep, '60']}\n  second:\n"
        b"    command: [echo]\n    after: first\n"
    )
    chained = env.submit(alice, chain).json()["id"]

    def waiting() -> Any:
        rows = env.client.get("/api/v1/queue", headers=alice).json()["items"]
        return [r for r in rows if r["run_id"] == chained and r["task_id"] == "second"]

    [row] = wait_for(waiting, 30, "the chained task to wait")
    assert row["reason_kind"] == "dependency" and row["position"] >= 1
    one = env.client.get("/api/v1/queue", headers=alice, params={"run": run_id}).json()
    assert all(r["run_id"] == run_id for r in one["items"])
    r = env.client.get("/api/v1/sites/nowhere", headers=alice)
    assert r.status_code == 404 and "local" in r.json()["hint"]
    r = env.client.get("/api/v1/queue", headers=alice, params={"limit": 0})
    assert r.status_code == 422 and r.json()["field"] == "query.limit"
    r = env.client.get("/api/v1/queue", headers=alice, params={"run": "nosuch"})
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/vnd.hexflow.workflow+json", 400), ("application/xml", 415)],
)
def test_bad_bodies_for_python_workflows(env: Env, content_type: str, status: int) -> None:
    r = env.client.post(
        "/api/v1/runs",
        content=b"{not json",
        headers={"Content-Type": content_type, **env.auth("alice", "p1")},
    )
    assert r.status_code == status, r.text
    assert r.json()["hint"]
