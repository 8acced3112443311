"""Authorization: every route of the OpenAPI document refuses missing, expired, forged and
under-scoped credentials; every route keeps each project's runs and audit entries to its
members (404 for what a caller may not see, 403 for what its role or scope forbids)."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from hexflow.model.access import parse_scopes
from hexflow.service import Admin
from hexflow.service.api import PUBLIC_PATHS
from hexflow.service.tokens import AccessTokens
from tests import service_env
from tests.service_env import HELLO, Env

db_url, env = service_env.db_url, service_env.env  # fixtures


_PARAMS = {  # the other path parameters, filled in with plausible values
    "{task_id}": "sometask",
    "{name}": "local",
    "{machine}": "perlmutter",
    "{jobid}": "somejob",
    "{path}": "some/file",
    "{group}": "p1",
}


def _routes(env: Env, private: bool = False) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every route the API documents
    (``private``: only those not in ``PUBLIC_PATHS``)."""
    out = []
    for path, ops in env.client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if private and path in PUBLIC_PATHS:
            continue
        for method in ops:
            filled = path.replace("{run_id}", "somerun")
            for param, value in _PARAMS.items():
                filled = filled.replace(param, value)
            out.append((method.upper(), filled))
    return out


def _call(env: Env, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "POST" and path == "/api/v1/runs":
        kwargs["content"] = HELLO
        kwargs["headers"] = {**headers, "Content-Type": "application/yaml"}
    elif method == "POST" and path in _JSON_BODIES:
        kwargs["json"] = _JSON_BODIES[path]
    return env.client.request(method, path, **kwargs)


_JSON_BODIES = {  # a valid body, so that what is checked is the credential
    "/api/v1/functions": {"name": "f", "import_path": "tests.events_fns:add"},
    "/api/v1/triggers": {"kind": "webhook", "function": "f"},
    "/api/v1/functions/local/uploads": {"size": 10},
}
# What the invoke scope allows, and how each answers it here (there is no such function)
INVOKE_ROUTES = {
    ("POST", "/api/v1/functions/local/invoke"): 404,
    ("POST", "/api/v1/functions/local/uploads"): 404,
    ("GET", "/api/v1/callbacks/secret"): 200,
}


def test_every_private_route_needs_a_valid_token_with_the_scope(env: Env) -> None:
    routes = _routes(env, private=True)
    assert {p for _, p in routes} >= {
        "/api/v1/runs",
        "/api/v1/runs/somerun",
        "/api/v1/runs/somerun/cancel",
        "/api/v1/runs/somerun/tasks",
        "/api/v1/audit",
    }
    client = env.admin.create_client("alice", "p1", parse_scopes("read"))
    expired = env.service.tokens.issue(
        user="alice",
        project="p1",
        scopes=parse_scopes("admin"),
        client_id=client.client.client_id,
        now=time.time() - 7200,
    )
    forged = AccessTokens(ec.generate_private_key(ec.SECP256R1()), issuer="hexflow", ttl=600).issue(
        user="alice",
        project="p1",
        scopes=parse_scopes("admin"),
        client_id=client.client.client_id,
        now=time.time(),
    )
    old = Admin(env.service.db, clock=lambda: time.time() - 7200)
    expired_api = old.create_token("dave", "p1", parse_scopes("admin"), expires_in=60).secret
    invoke_only = env.token("dave", "p1", "invoke")
    for method, path in routes:
        for headers, why in [
            ({}, "no token"),
            ({"Authorization": f"Bearer {expired}"}, "expired access token"),
            ({"Authorization": f"Bearer {forged}"}, "forged access token"),
            ({"Authorization": f"Bearer {expired_api}"}, "expired API token"),
            ({"Authorization": "Bearer hxt_garbage"}, "malformed API token"),
        ]:
            r = _call(env, method, path, headers)
            assert r.status_code == 401, (method, path, why, r.text)
            assert r.json()["error"] == "unauthorized" and r.json()["hint"]
        r = _call(env, method, path, {"Authorization": f"Bearer {invoke_only}"})
        if (method, path) in INVOKE_ROUTES:  # allowed
            assert r.status_code == INVOKE_ROUTES[method, path], (method, path, r.text)
            continue
        assert r.status_code == 403, (method, path, r.text)
        assert "scope" in r.json()["message"]


def test_public_routes_answer_without_a_token(env: Env) -> None:
    for path in ("/", "/metrics", "/openapi.json", "/docs"):
        assert env.client.get(path).status_code == 200, path


def test_runs_of_another_project_do_not_exist_for_you(env: Env) -> None:
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    run_id = env.submit(alice).json()["id"]
    env.wait_run(alice, run_id)
    for method, path in [
        ("GET", f"/api/v1/runs/{run_id}"),
        ("GET", f"/api/v1/runs/{run_id}/tasks"),
        ("POST", f"/api/v1/runs/{run_id}/cancel"),
    ]:
        r = env.client.request(method, path, headers=bob)
        assert r.status_code == 404, (method, path, r.text)
        assert run_id in r.json()["message"] and "hello" not in r.text
    assert env.client.get("/api/v1/runs", headers=bob).json()["items"] == []
    r = env.client.get("/api/v1/runs", params={"project": "p1"}, headers=bob)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = env.submit(bob, project="p1")
    assert r.status_code == 404
    r = env.submit(bob, project="nosuchproject")
    assert r.status_code == 404
    assert (
        env.client.get("/api/v1/audit", headers=env.auth("bob", "p2", "admin")).status_code == 403
    )
    # bob's refused submission and cancel were audited, with no p1 data leaked to bob
    denied = env.service.db.log.entries(projects=None, actor="bob")
    assert {(e.action, e.outcome) for e in denied} == {
        ("run.submit", "denied"),
        ("run.cancel", "denied"),
    }


def test_a_token_bound_to_one_project_sees_only_that_one(env: Env) -> None:
    erin_p1, erin_p2 = env.auth("erin", "p1"), env.auth("erin", "p2")
    in_p1 = env.submit(erin_p1).json()["id"]
    assert env.submit(erin_p1, project="p2").status_code == 404
    assert env.client.get(f"/api/v1/runs/{in_p1}", headers=erin_p2).status_code == 404
    assert env.client.get("/api/v1/runs", headers=erin_p2).json()["items"] == []
    unbound = env.auth("erin")
    assert [r["id"] for r in env.client.get("/api/v1/runs", headers=unbound).json()["items"]] == [
        in_p1
    ]
    r = env.submit(unbound)  # member of two projects, none named
    assert r.status_code == 422 and r.json()["field"] == "project"


def test_a_viewer_reads_but_does_not_submit_or_cancel(env: Env) -> None:
    alice, carol = env.auth("alice", "p1"), env.auth("carol", "p1", "read,submit")
    run_id = env.submit(alice).json()["id"]
    assert env.client.get(f"/api/v1/runs/{run_id}", headers=carol).status_code == 200
    assert env.client.get(f"/api/v1/runs/{run_id}/tasks", headers=carol).status_code == 200
    r = env.client.post(f"/api/v1/runs/{run_id}/cancel", headers=carol)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = env.submit(carol)
    assert r.status_code == 403 and "viewer" in r.json()["message"]


def test_scopes_are_checked_separately(env: Env) -> None:
    read_only, submit_only = env.auth("alice", "p1", "read"), env.auth("alice", "p1", "submit")
    assert env.submit(read_only).status_code == 403
    run_id = env.submit(submit_only).json()["id"]
    assert env.client.get(f"/api/v1/runs/{run_id}", headers=submit_only).status_code == 403
    assert env.client.get(f"/api/v1/runs/{run_id}", headers=read_only).status_code == 200
    assert env.client.get(
        "/api/v1/audit", headers=env.auth("alice", "p1", "admin")
    ).status_code == (403)  # the admin scope without the admin role


def test_audit_log_visibility(env: Env) -> None:
    env.submit(env.auth("alice", "p1"))
    env.submit(env.auth("bob", "p2"))
    dave = env.auth("dave", "p1", "admin")
    seen = env.client.get("/api/v1/audit", headers=dave).json()["items"]
    assert seen and {e["project"] for e in seen} == {"p1"}
    assert {e["action"] for e in seen} >= {"run.submit", "token.create"}
    assert env.client.get("/api/v1/audit", params={"project": "p2"}, headers=dave).status_code == (
        404
    )
    assert env.client.get("/api/v1/audit", headers=env.auth("dave", "p1", "read")).status_code == (
        403
    )
    root = env.auth("root", None, "admin")
    everything = env.client.get("/api/v1/audit", headers=root).json()["items"]
    assert {e["project"] for e in everything} >= {"p1", "p2", None}
    only_p2 = env.client.get("/api/v1/audit", params={"project": "p2"}, headers=root).json()
    assert {e["project"] for e in only_p2["items"]} == {"p2"}
    page = env.client.get("/api/v1/audit", params={"limit": 2}, headers=root).json()
    rest = env.client.get(
        "/api/v1/audit", params={"limit": 500, "cursor": page["next_cursor"]}, headers=root
    ).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [e["id"] for e in everything]


def test_a_new_role_takes_effect_at_once(env: Env) -> None:
    from hexflow.model.access import Role

    alice = env.auth("alice", "p1")
    run_id = env.submit(alice).json()["id"]
    env.admin.set_member("p1", "alice", Role.VIEWER)
    assert env.submit(alice).status_code == 403
    assert env.client.get(f"/api/v1/runs/{run_id}", headers=alice).status_code == 200
