"""``Idempotency-Key``: a retried submission never creates a second run — not when retried
in sequence, not when sent concurrently, not after the first request died half-way."""

from __future__ import annotations

import threading
import time

from hexflow.flow.runtime import new_run_id
from tests import service_env
from tests.service_env import HELLO, Env

db_url, env = service_env.db_url, service_env.env  # fixtures


def _runs(env: Env, headers: dict[str, str]) -> list[str]:
    return [r["id"] for r in env.client.get("/api/v1/runs", headers=headers).json()["items"]]


def test_a_retry_gets_the_same_run(env: Env) -> None:
    alice = {**env.auth("alice", "p1"), "Idempotency-Key": "job-42"}
    first = env.submit(alice)
    again = env.submit(alice)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _runs(env, alice) == [first.json()["id"]]
    other = env.submit({**alice, "Idempotency-Key": "job-43"})
    assert other.json()["id"] != first.json()["id"]
    entries = env.service.db.log.entries(projects=["p1"], action="run.submit")
    assert [e.detail for e in entries] == [None, "replayed", None]


def test_the_same_key_for_another_request_is_refused(env: Env) -> None:
    alice = {**env.auth("alice", "p1"), "Idempotency-Key": "k"}
    env.submit(alice)
    r = env.submit(alice, HELLO.replace(b"echo hi", b"echo ho"))
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key"
    r = env.submit(alice, param="x=1")
    assert r.status_code == 422


def test_keys_are_per_user(env: Env) -> None:
    alice = {**env.auth("alice", "p1"), "Idempotency-Key": "shared"}
    erin = {**env.auth("erin", "p1"), "Idempotency-Key": "shared"}
    assert env.submit(alice).json()["id"] != env.submit(erin).json()["id"]


def test_concurrent_retries_create_one_run(env: Env) -> None:
    headers = {**env.auth("alice", "p1"), "Idempotency-Key": "burst"}
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def post() -> None:
        r = env.submit(headers)
        with lock:
            answers.append((r.status_code, r.json().get("id")))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    created = {run_id for status, run_id in answers if status == 201}
    assert len(answers) == 6 and len(created) == 1
    assert {status for status, _ in answers} <= {201, 409}
    assert _runs(env, headers) == list(created)


def test_a_reservation_whose_request_died_is_taken_over(env: Env) -> None:
    alice = {**env.auth("alice", "p1"), "Idempotency-Key": "orphan"}
    first = env.submit(alice)  # only to learn the fingerprint this request has
    db = env.service.db
    from sqlalchemy import select, update

    from hexflow.store.service_schema import idempotency_keys as keys

    with db.read() as conn:
        fingerprint = conn.execute(select(keys.c.fingerprint)).scalar_one()
    with db.write() as conn:  # as if the server died after reserving, before creating
        reserved = new_run_id()
        conn.execute(update(keys).values(run_id=reserved, created_at=time.time()))
    busy = env.submit(alice)
    assert busy.status_code == 409 and "retry" in busy.json()["hint"]
    with db.write() as conn:
        conn.execute(update(keys).values(created_at=time.time() - 600))
    retried = env.submit(alice)
    assert retried.status_code == 201 and retried.json()["id"] == reserved
    assert env.submit(alice).json()["id"] == reserved
    with db.read() as conn:
        assert conn.execute(select(keys.c.fingerprint)).scalar_one() == fingerprint
    assert sorted(_runs(env, alice)) == sorted([first.json()["id"], reserved])


def test_a_refused_submission_releases_nothing_it_did_not_take(env: Env) -> None:
    alice = {**env.auth("alice", "p1"), "Idempotency-Key": "bad-then-good"}
    assert env.submit(alice, b"name: [").status_code == 400
    assert env.submit(alice).status_code == 201  # the bad body reserved nothing
