"""Bad input on every route: JSON errors with a message, a hint and the field (and, for
workflow documents, the line) at fault; nothing is created by a refused submission."""

from __future__ import annotations

from typing import Any

from tests import service_env
from tests.service_env import Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def _error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["message"] and "hint" in body, body
    return body


def test_unreadable_workflow_documents_are_400_with_the_line(env: Env) -> None:
    alice = env.auth("alice", "p1")
    body = _error(env.submit(alice, b"name: x\ntasks:\n  a: {command: [echo\n"), 400)
    assert (
        body["error"] == "bad_request" and body["line"] == 4 and "invalid YAML" in body["message"]
    )
    r = env.client.post(
        "/api/v1/runs",
        content=b'{"name": "x",\n "tasks": ',
        headers={**alice, "Content-Type": "application/json"},
    )
    body = _error(r, 400)
    assert body["line"] == 2 and "invalid JSON" in body["message"]
    assert _error(env.submit(alice, b""), 400)["line"] == 1
    body = _error(env.submit(alice, b"name: \xff\xfe\n"), 400)
    assert "UTF-8" in body["message"]


def test_wrong_workflow_fields_are_422_with_field_and_line(env: Env) -> None:
    alice = env.auth("alice", "p1")
    cases = {
        b"name: x\ntasks:\n  a:\n    command: echo\n    cpu: 2\n": ("tasks.a.cpu", 5, "cpus"),
        b"name: x\ntasks:\n  a: {command: echo, memory: lots}\n": ("tasks.a.memory", 3, None),
        b"name: x\ntasks:\n  a: {command: echo, after: b}\n": ("tasks.a.after", 3, None),
        b"name: x\n": ("tasks", 1, None),
        b"name: x\ntasks:\n  a: {command: 'echo ${nope}'}\n": ("tasks.a.command", 3, None),
    }
    for doc, (field, line, hinted) in cases.items():
        body = _error(env.submit(alice, doc), 422)
        assert body["error"] == "invalid_workflow", body
        assert (body["field"], body["line"]) == (field, line), body
        if hinted:
            assert hinted in body["hint"]
    assert env.client.get("/api/v1/runs", headers=alice).json()["items"] == []


def test_bad_submission_options(env: Env) -> None:
    alice = env.auth("alice", "p1")
    r = env.client.post(
        "/api/v1/runs", content=b"<xml/>", headers={**alice, "Content-Type": "application/xml"}
    )
    assert _error(r, 415)["error"] == "unsupported_media_type"
    huge = b"name: x\ntasks:\n  a: {command: echo}\n" + b"#" * (1 << 20)
    assert _error(env.submit(alice, huge), 413)["error"] == "too_large"
    body = _error(env.submit(alice, param="novalue"), 422)
    assert body["field"] == "param"
    body = _error(env.submit(alice, param="undeclared=1"), 422)
    assert "neither declares nor uses" in body["message"]
    body = _error(env.submit({**alice, "Idempotency-Key": "has space"}), 422)
    assert body["field"] == "Idempotency-Key"
    assert env.client.get("/api/v1/runs", headers=alice).json()["items"] == []


def test_bad_query_parameters_name_the_field(env: Env) -> None:
    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    cases = [
        ("/api/v1/runs", {"limit": 0}, "query.limit"),
        ("/api/v1/runs", {"limit": 501}, "query.limit"),
        ("/api/v1/runs", {"limit": "many"}, "query.limit"),
        ("/api/v1/runs", {"state": "sleeping"}, "query.state"),
        ("/api/v1/runs", {"cursor": "!!!"}, "cursor"),
        ("/api/v1/runs", {"cursor": "WzFd"}, "cursor"),  # [1]: wrong shape
        (f"/api/v1/runs/{run_id}/tasks", {"state": "asleep"}, "query.state"),
        (f"/api/v1/runs/{run_id}/tasks", {"limit": 1001}, "query.limit"),
        (f"/api/v1/runs/{run_id}/tasks", {"cursor": "WyJ4Il0"}, "cursor"),  # ["x"]
        ("/api/v1/audit", {"limit": -1}, "query.limit"),
    ]
    dave = env.auth("dave", "p1", "admin")
    for path, params, field in cases:
        headers = dave if "audit" in path else alice
        body = _error(env.client.get(path, params=params, headers=headers), 422)
        assert body["field"] == field, (path, params, body)
    body = _error(env.client.get("/api/v1/audit", params={"cursor": "x"}, headers=dave), 422)
    assert body["field"] == "cursor"


def test_unknown_routes_and_methods_answer_json(env: Env) -> None:
    alice = env.auth("alice", "p1")
    body = _error(env.client.get("/api/v1/nothing", headers=alice), 404)
    assert body["error"] == "not_found"
    body = _error(env.client.delete("/api/v1/runs", headers=alice), 405)
    assert body["error"] == "method_not_allowed"
