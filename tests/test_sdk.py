"""The Python SDK (``hexflow.Client``) against the service in-process, on SQLite and
PostgreSQL: Python workflows submitted with ``wf.submit(client)`` whose futures resolve
remotely, YAML/JSON submissions, idempotent retries, list/get/cancel of runs and tasks,
logs, events, sites, and the server's errors as hexflow exceptions."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import hexflow as hx
from hexflow.errors import AuthError, Forbidden, NotFound, ServiceError, TaskFailed
from hexflow.errors import WorkflowFileError as WFError
from hexflow.flow import wire
from tests import service_env
from tests.service_env import HELLO, SLEEPER, Env

db_url, env = service_env.db_url, service_env.env  # fixtures


@hx.task
def square(x: int) -> int:
    return x * x


@hx.task
def total(values: list[int]) -> int:
    return sum(values)


@hx.task
def explode(message: str) -> None:
    raise ValueError(message)


def sdk(env: Env, user: str = "alice", project: str | None = "p1", **kw: Any) -> hx.Client:
    token = env.token(user, project, kw.pop("scopes", "read,submit"))
    transport = env.client._transport  # the app in this process, through httpx
    return hx.Client("http://testserver", token, transport=transport, **kw)


@pytest.fixture
def alice(env: Env) -> Iterator[hx.Client]:
    with sdk(env) as client:
        yield client


def test_python_workflow_futures_resolve_remotely(env: Env, alice: hx.Client) -> None:
    with hx.Workflow("sdk-python") as wf:
        parts = [square(i) for i in range(4)]
        result = total(parts)
        boom = explode("no good")
    run = wf.submit(alice)
    assert run.id and run.state in ("pending", "running")
    assert result.result(timeout=60) == 0 + 1 + 4 + 9
    assert parts[3].result(timeout=5) == 9 and parts[3].done()
    with pytest.raises(ValueError, match="no good") as raised:
        boom.result(timeout=60)
    assert any("remote traceback" in note for note in raised.value.__notes__)
    assert run.wait(60).state == "failed"
    assert {t["id"]: t["state"] for t in run.tasks()} == {
        "square-1": "succeeded",
        "square-2": "succeeded",
        "square-3": "succeeded",
        "square-4": "succeeded",
        "total-1": "succeeded",
        "explode-1": "failed",
    }
    with pytest.raises(hx.HexflowError, match="already run"):
        wf.submit(alice)


def test_yaml_json_and_files(env: Env, alice: hx.Client, tmp_path: Any) -> None:
    run = alice.submit(HELLO.decode()).wait(60)
    assert run.ok and run.info["tasks"] == {"succeeded": 2}
    doc = {"name": "js", "tasks": {"t": {"command": ["echo", "${who}"]}}, "params": {"who": "x"}}
    run = alice.submit(doc, params={"who": "world"}).wait(60)
    assert run.ok
    assert alice.logs(run.id, "t")["stdout"] == "world\n"
    path = tmp_path / "flow.yaml"
    path.write_bytes(HELLO)
    assert alice.submit(path).wait(60).ok
    assert alice.submit(str(path)).wait(60).ok
    with pytest.raises(hx.SpecError, match="no such file|No such file"):
        alice.submit(tmp_path / "missing.yaml")
    with pytest.raises(hx.SpecError, match="cannot submit"):
        alice.submit(42)


def test_a_task_failure_and_cancel(env: Env, alice: hx.Client) -> None:
    run = alice.submit(b"name: f\ntasks:\n  bad:\n    command: [sh, -c, 'echo no >&2; exit 3']\n")
    with pytest.raises(TaskFailed, match="bad") as failed:
        run.result("bad", timeout=60)
    assert failed.value.fields["exit_code"] == 3
    assert alice.logs(run.id, "bad")["stderr"] == "no\n"
    sleeper = alice.submit(SLEEPER)
    alice.future(sleeper.id, "nap")  # a handle costs nothing
    with pytest.raises(TimeoutError):
        sleeper.result("nap", timeout=0.3)
    assert alice.cancel_task(sleeper.id, "nap")["id"] == "nap"
    sleeper.wait(30)  # a run with a cancelled task ends failed (docs/sdk.md)
    assert alice.task(sleeper.id, "nap")["state"] == "cancelled"
    again = alice.submit(SLEEPER)
    assert again.cancel().wait(30).state == "cancelled"
    assert [r["id"] for r in alice.runs(state="cancelled")] == [again.id]
    assert len(alice.runs(limit=2)) == 2


def test_idempotent_submission_survives_a_lost_answer(env: Env) -> None:
    """The first answer is lost (the run was created); the SDK retries with the same
    Idempotency-Key and gets the same run back."""
    real = env.client._transport
    calls: list[str] = []

    class LosesFirstAnswer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            calls.append(request.headers.get("idempotency-key", ""))
            response = real.handle_request(request)
            if request.method == "POST" and len(calls) == 1:
                return httpx.Response(503, json={"error": "unavailable", "message": "lost"})
            return response

    token = env.token("alice", "p1")
    with hx.Client("http://testserver", token, transport=LosesFirstAnswer()) as client:
        run = client.submit(HELLO)
    assert len(calls) == 2 and calls[0] == calls[1] != ""
    with sdk(env) as alice:
        assert [r["id"] for r in alice.runs()] == [run.id]
        first = alice.submit(HELLO, idempotency_key="same-key")
        second = alice.submit(HELLO, idempotency_key="same-key")
        assert first.id == second.id


def test_errors_carry_the_servers_message_and_hint(env: Env) -> None:
    with hx.Client("http://testserver", "hxt_bad", transport=env.client._transport) as anon:
        with pytest.raises(AuthError) as err:
            anon.runs()
        assert err.value.hint and err.value.fields["status"] == 401
    with sdk(env, scopes="read") as reader, pytest.raises(Forbidden, match="submit"):
        reader.submit(HELLO)
    with sdk(env) as alice:
        with pytest.raises(NotFound, match="no run 'nosuch'"):
            alice.run("nosuch")
        with pytest.raises(WFError) as bad:
            alice.submit(b"name: x\ntasks:\n  a:\n    cmd: echo\n")
        assert bad.value.fields["field"] and bad.value.fields["line"] == 4
    with hx.Client("http://127.0.0.1:9", "t", retries=0, timeout=2) as nowhere:
        with pytest.raises(ServiceError, match="cannot reach") as unreachable:
            nowhere.runs()
        assert "HEXFLOW_SERVER" in (unreachable.value.hint or "")


def _shell(**extra: Any) -> dict[str, Any]:
    return {"id": "a", "name": "a", "kind": "shell", "command": ["ls"], **extra}


def _wire(tasks: list[dict[str, Any]]) -> bytes:
    return json.dumps({"format": wire.FORMAT, "name": "w", "tasks": tasks}).encode()


@pytest.mark.parametrize(
    ("tasks", "field"),
    [
        ([{"id": "a", "name": "a", "kind": "python"}], "tasks[0]"),  # no payload
        ([{"id": "a", "name": "a", "kind": "python", "payload": "!!"}], "tasks[0].payload"),
        ([{"id": "a", "name": "a", "kind": "shell", "command": "ls"}], "tasks[0].command"),
        ([{"id": "a", "name": "a", "kind": "shell", "command": ["ls"], "x": 1}], "tasks[0].x"),
        ([_shell(deps=["b"])], "tasks[0].deps"),
        ([_shell(cwd="/etc")], "tasks[0].cwd"),
        ([_shell(cwd="a/../../x")], "tasks[0].cwd"),
        ([_shell(resources={"cpus": -1})], "tasks[0].cpus"),
        ([_shell(resources={"cores": 2})], "tasks[0].resources.cores"),
        ([_shell(), _shell()], "tasks[1].id"),
        ([{"id": "a", "name": "a", "kind": "teleport"}], "tasks[0]"),
        ([], "tasks"),
    ],
)
def test_bad_python_workflow_documents(env: Env, tasks: list[dict[str, Any]], field: str) -> None:
    r = env.client.post(
        "/api/v1/runs",
        content=_wire(tasks),
        headers={"Content-Type": wire.MEDIA_TYPE, **env.auth("alice", "p1")},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_workflow" and body["field"].startswith(field), body
    assert body["hint"]


def test_python_payloads_are_never_unpickled_by_the_server(env: Env) -> None:
    """A payload that would run code when unpickled is stored as bytes: the request
    succeeds and nothing runs until a worker loads the task (which then fails, here)."""
    marker = env.service.config.home / "pwned"
    evil = base64.b64encode(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.").decode()
    doc = _wire([{"id": "a", "name": "a", "kind": "python", "payload": evil}])
    headers = {"Content-Type": wire.MEDIA_TYPE, **env.auth("alice", "p1")}
    r = env.client.post("/api/v1/runs", content=doc, headers=headers)
    assert r.status_code == 201 and not marker.exists()  # not unpickled in the request


def test_python_workflows_can_be_turned_off(tmp_path: Any, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from hexflow.service import Admin
    from hexflow.service.api import create_app
    from hexflow.store.service_db import ServiceDb

    config = service_env.make_config(tmp_path, db_url, python_workflows=False)
    with ServiceDb(db_url) as db:
        admin = Admin(db)
        service_env.seed_accounts(admin)
        token = admin.create_token("alice", "p1", frozenset(hx_scopes())).secret
    with (
        TestClient(create_app(config)) as client,
        hx.Client("http://testserver", token, transport=client._transport) as sdk_client,
    ):
        with hx.Workflow("off") as wf:
            square(2)
        with pytest.raises(ServiceError, match="does not accept Python") as refused:
            wf.submit(sdk_client)
        assert refused.value.fields["status"] == 415
        assert sdk_client.submit(HELLO).wait(60).ok  # YAML still works


def hx_scopes() -> set[Any]:
    from hexflow.model.access import parse_scopes

    return set(parse_scopes("read,submit"))


def test_logs_events_and_sites(env: Env, alice: hx.Client) -> None:
    run = alice.submit(b"name: l\ntasks:\n  t:\n    command: [sh, -c, 'echo one; echo two >&2']\n")
    events = list(run.events())
    assert events[-1].event == "end" and events[-1].data["state"] == "succeeded"
    assert ("t", "succeeded") in {(e.data.get("task_id"), e.data["state"]) for e in events}
    followed = [(e.event, e.data.get("text")) for e in alice.follow_logs(run.id, "t")]
    assert ("stdout", "one\n") in followed and ("stderr", "two\n") in followed
    assert followed[-1][0] == "end"
    [logs] = alice.run_logs(run.id)
    assert (logs["task_id"], logs["stdout"], logs["stderr"]) == ("t", "one\n", "two\n")
    [site] = alice.sites()
    assert site["name"] == "local" and site["pools"][0]["cpus"] == 1
    assert alice.site("local")["queue"]["runs_active"] >= 0
    with pytest.raises(NotFound, match="no site"):
        alice.site("mars")
