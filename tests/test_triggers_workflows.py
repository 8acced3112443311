"""Triggers that submit a workflow: a YAML template whose params the event fills in, one
run per event (a redelivery submits none), labelled with the trigger and the event, its
tasks ``urgent``; and the bad input such a trigger can be given (422 naming the field)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

from hexflow.events import signed_headers
from tests import service_env
from tests.events_env import ALL, eventually, register
from tests.service_env import Env

db_url, env = service_env.db_url, service_env.env  # fixtures

TEMPLATE = """\
name: reduce
params:
  sample:          # required: the event gives it
  frames: 3
tasks:
  reduce:          # shell: true — the values reach the shell as variables, never as code
    shell: true
    command: echo ${sample} ${frames} > reduced.txt
  check:
    shell: true
    command: grep -Fqx -- "${sample} ${frames}" reduced.txt
    after: reduce
"""


def _run_id(trigger_id: str, seq: int) -> str:
    return "t" + hashlib.sha256(f"trigger:{trigger_id}:{seq}".encode()).hexdigest()[:15]


def _hook(env: Env, hook: dict, body: bytes) -> dict:
    headers = signed_headers(hook["secret"], body, timestamp=time.time(), nonce=uuid.uuid4().hex)
    r = env.client.post(
        hook["hook_url"], content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 202, r.text
    got: dict = r.json()
    return got


def test_a_webhook_submits_its_workflow_once_per_event(env: Env) -> None:
    alice = env.auth("alice", "p1", ALL)
    r = env.client.post(
        "/api/v1/triggers",
        json={"kind": "webhook", "workflow": TEMPLATE, "args": {"frames": "7"}, "name": "red"},
        headers=alice,
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["function"] == "" and hook["target"] == "workflow reduce"
    seq = _hook(env, hook, b'{"sample": "s42", "ignored": 1}')["seq"]
    run_id = _run_id(hook["id"], seq)
    run = env.wait_run(alice, eventually(lambda: _exists(env, alice, run_id), "the run"))
    assert run["state"] == "succeeded", run
    assert run["name"] == "reduce" and run["project"] == "p1" and run["submitted_by"] == "alice"
    assert run["triggered_by"] == {"trigger": hook["id"], "event": str(seq)}
    tasks = env.client.get(f"/api/v1/runs/{run_id}/tasks", headers=alice).json()["items"]
    assert {t["qos"] for t in tasks} == {"urgent"}  # event work
    # the event delivered again (as after a crash) submits nothing more
    triggers = env.service.events.triggers
    trigger = triggers.get(hook["id"], None)
    workflows = triggers.workflows
    assert workflows is not None
    from hexflow.model.events import Event

    event = Event(seq, "webhook.received", "p1", hook["id"], time.time(), {"body": {}})
    assert workflows._submit(trigger, event, {"sample": "s42"}, run_id) is False  # type: ignore[attr-defined]
    listed = eventually(
        lambda: [t for t in env.client.get("/api/v1/triggers", headers=alice).json()["items"]
                 if t["fired"] == 1],
        "the firing to be recorded",
    )  # fmt: skip
    assert listed[0]["last_error"] is None and listed[0]["target"].startswith("workflow")


def test_an_event_cannot_inject_shell_code(env: Env, tmp_path: Path) -> None:
    """A webhook body is outside input: in a ``shell: true`` command its values are the
    shell's variables, so a value made of shell syntax stays a value."""
    alice = env.auth("alice", "p1", ALL)
    hook = env.client.post(
        "/api/v1/triggers", json={"kind": "webhook", "workflow": TEMPLATE}, headers=alice
    ).json()
    pwned = tmp_path / "pwned"
    evil = f"s1; touch {pwned}; echo $(touch {pwned})"
    seq = _hook(env, hook, json.dumps({"sample": evil}).encode())["seq"]
    run_id = _run_id(hook["id"], seq)
    run = env.wait_run(alice, eventually(lambda: _exists(env, alice, run_id), "the run"))
    assert run["state"] == "succeeded", run  # check found the value, verbatim, in the file
    assert not pwned.exists()


def _exists(env: Env, headers: dict[str, str], run_id: str) -> str | None:
    r = env.client.get(f"/api/v1/runs/{run_id}", headers=headers)
    return run_id if r.status_code == 200 else None


def test_a_failed_submission_is_the_triggers_last_error(env: Env) -> None:
    """An event without the param the template needs submits nothing; the trigger says why."""
    alice = env.auth("alice", "p1", ALL)
    hook = env.client.post(
        "/api/v1/triggers", json={"kind": "webhook", "workflow": TEMPLATE}, headers=alice
    ).json()
    _hook(env, hook, b'{"other": 1}')
    listed = eventually(
        lambda: [t for t in env.client.get("/api/v1/triggers", headers=alice).json()["items"]
                 if t["fired"] == 1],
        "the failed firing to be recorded",
    )  # fmt: skip
    assert "sample" in (listed[0]["last_error"] or ""), listed[0]


def test_bad_workflow_triggers_are_422_naming_the_field(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    cases = [
        ({"kind": "webhook", "function": "add", "workflow": TEMPLATE}, "workflow"),
        ({"kind": "webhook"}, "function"),
        ({"kind": "webhook", "workflow": "tasks: [oops"}, "workflow"),
        ({"kind": "webhook", "workflow": "- a list"}, "workflow"),
        ({"kind": "webhook", "workflow": "name: x\ntasks:\n  a:\n    bogus: 1\n"}, "workflow"),
        ({"kind": "webhook", "workflow": TEMPLATE, "args": {"samples": "x"}}, "args.samples"),
        ({"kind": "webhook", "workflow": "name: x\nparams: [a]\ntasks: {}\n"}, "workflow.params"),
        ({"kind": "webhook", "workflow": "   "}, "workflow"),
    ]
    for body, field in cases:
        r = env.client.post("/api/v1/triggers", json=body, headers=alice)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    assert env.client.get("/api/v1/triggers", headers=alice).json()["items"] == []


def test_a_trigger_whose_owner_may_no_longer_submit_submits_nothing(env: Env) -> None:
    from hexflow.model.access import Role

    alice = env.auth("alice", "p1", ALL)
    hook = env.client.post(
        "/api/v1/triggers", json={"kind": "webhook", "workflow": TEMPLATE}, headers=alice
    ).json()
    env.admin.set_member("p1", "alice", Role.VIEWER)  # alice may only read p1 now
    seq = _hook(env, hook, b'{"sample": "s7"}')["seq"]
    listed = eventually(
        lambda: [t for t in env.client.get("/api/v1/triggers", headers=alice).json()["items"]
                 if t["fired"] == 1],
        "the refused firing to be recorded",
    )  # fmt: skip
    assert "may no longer submit" in (listed[0]["last_error"] or ""), listed[0]
    run = env.client.get(f"/api/v1/runs/{_run_id(hook['id'], seq)}", headers=alice)
    assert run.status_code == 404
