"""Group commit of the service's writes (``store.group_commit``) and the credential cache:
on SQLite and PostgreSQL, many requests' rows go in one transaction, a refused request's
rows fail alone, and a cached credential is trusted no longer than its bound."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hexflow.errors import AuthError, Conflict
from hexflow.model import RunRecord, TaskKind, TaskRecord, TaskSpec, TaskState
from hexflow.model.access import parse_scopes
from hexflow.service import Admin, Service
from hexflow.store.group_commit import IDEMPOTENCY_TTL, AuditRow, GroupWriter, KeyRow, Writes
from hexflow.store.schema import runs, tasks
from hexflow.store.service_db import ServiceDb
from hexflow.store.service_schema import audit_log, idempotency_keys
from tests import service_env
from tests.service_env import make_config, seed_accounts

# fixtures: sqlite, and postgres when HEXFLOW_TEST_POSTGRES_URL; the running app
db_url, env = service_env.db_url, service_env.env


def _new_run(run_id: str, n_tasks: int = 2, key: str | None = None) -> Writes:
    run = RunRecord(id=run_id, name="w", created_at=time.time(), workdir="/tmp", config={})
    run.config["project"] = "p1"
    specs = [
        TaskSpec(id=f"t{i}", name=f"t{i}", kind=TaskKind.SHELL, command=("true",))
        for i in range(n_tasks)
    ]
    records = [TaskRecord(run_id=run_id, spec=s, state=TaskState.READY) for s in specs]
    row = KeyRow("alice", key, "fp", run_id, "p1", time.time()) if key else None
    audit = (AuditRow(time.time(), "alice", "p1", "run.submit", run_id, "ok", 201),)
    return Writes(run=run, tasks=records, key=row, audit=audit)


def _count(db: ServiceDb, table: object, *where: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())  # type: ignore[arg-type]


def test_concurrent_writes_share_transactions_and_are_stored(db_url: str) -> None:
    with ServiceDb(db_url) as db:
        futures = [db.writer.submit(_new_run(f"run{i:03d}", key=f"k{i}")) for i in range(60)]
        for done in futures:
            done.result(timeout=30)
        assert db.writer.written == 60 and 1 <= db.writer.batches <= 60
        assert _count(db, runs) == 60 and _count(db, tasks) == 120
        assert _count(db, idempotency_keys) == 60 and _count(db, audit_log) == 60
        stored = db.runs.get_run_with_counts("run007", ["p1"])
        assert stored is not None and stored[1] == {"ready": 2}
        with db.read() as conn:
            seqs = conn.execute(select(tasks.c.seq).where(tasks.c.run_id == "run007")).scalars()
            assert sorted(seqs) == [0, 1]


def test_a_refused_request_fails_alone_and_all_of_it(db_url: str) -> None:
    with ServiceDb(db_url) as db:
        db.writer.write(_new_run("first", key="taken"))
        batch = [
            (_new_run("a1"), Future()),
            (_new_run("dup", key="taken"), Future()),  # its key is stored already
            (_new_run("a2", key="fresh"), Future()),
        ]
        db.writer._commit(batch)  # one batch, as the writer thread would take it
        assert batch[0][1].result() is None and batch[2][1].result() is None
        with pytest.raises(Conflict):
            batch[1][1].result()
        # nothing of the refused request: neither its run, nor its tasks, nor its audit row
        assert db.runs.get_run("dup", ["p1"]) is None
        assert _count(db, tasks, tasks.c.run_id == "dup") == 0
        assert _count(db, audit_log, audit_log.c.target == "dup") == 0
        assert {r.id for r in db.runs.list_runs(["p1"])} == {"first", "a1", "a2"}


def test_expired_keys_are_purged_with_a_batch(db_url: str) -> None:
    now = [time.time()]
    with ServiceDb(db_url) as db:
        writer = GroupWriter(db.engine, clock=lambda: now[0])
        try:
            writer.write(_new_run("old", key="k-old"))
            now[0] += IDEMPOTENCY_TTL + 1
            # the first commit purged already (at start); the next purge is due now
            with db.write() as conn:
                conn.execute(
                    idempotency_keys.update().values(created_at=now[0] - IDEMPOTENCY_TTL - 1)
                )
            writer.write(_new_run("new", key="k-new"))
            assert db.log.reservation("alice", "k-old") is None
            assert db.log.reservation("alice", "k-new") is not None
        finally:
            writer.close()


def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    db = ServiceDb(f"sqlite:///{tmp_path / 's.db'}")
    db.writer.write(_new_run("r1"))
    db.close()
    with pytest.raises(Exception, match="closed"):
        db.writer.submit(_new_run("r2"))


def test_a_cached_credential_is_trusted_no_longer_than_its_bound(
    tmp_path: Path, db_url: str
) -> None:
    now = [1_000_000.0]
    config = make_config(tmp_path, db_url, auth_cache_ttl=1.0)
    service = Service(config, clock=lambda: now[0])
    try:
        admin = Admin(service.db, clock=lambda: now[0])
        seed_accounts(admin)
        token = admin.create_token("alice", "p1", parse_scopes("read,submit"))
        header = f"Bearer {token.secret}"
        assert service.auth.authenticate(header, now=now[0]).name == "alice"
        admin.revoke_token(token.token.id)
        now[0] += 0.5  # within the bound: still trusted, from the cache (no I/O)
        assert service.auth.cached(header, now=now[0]) is not None
        assert service.auth.authenticate(header, now=now[0]).name == "alice"
        now[0] += 0.6  # past it: read again, and refused
        assert service.auth.cached(header, now=now[0]) is None
        with pytest.raises(AuthError, match="revoked"):
            service.auth.authenticate(header, now=now[0])
        # a wrong secret never hits the cache of the right one
        other = admin.create_token("alice", "p1", parse_scopes("read"))
        service.auth.authenticate(f"Bearer {other.secret}", now=now[0])
        with pytest.raises(AuthError, match="unknown API token"):
            service.auth.authenticate(f"Bearer {other.secret[:-4]}AAAA", now=now[0])
    finally:
        service.close()


def test_a_cached_credential_ends_with_its_expiry(tmp_path: Path, db_url: str) -> None:
    now = [1_000_000.0]
    service = Service(make_config(tmp_path, db_url, auth_cache_ttl=60.0), clock=lambda: now[0])
    try:
        admin = Admin(service.db, clock=lambda: now[0])
        seed_accounts(admin)
        token = admin.create_token("alice", "p1", parse_scopes("read"), expires_in=10)
        header = f"Bearer {token.secret}"
        service.auth.authenticate(header, now=now[0])
        now[0] += 11
        with pytest.raises(AuthError, match="expired"):
            service.auth.authenticate(header, now=now[0])
    finally:
        service.close()


def test_submissions_from_many_threads_each_get_their_run(env: service_env.Env) -> None:
    """Through the API: 24 concurrent submissions (half of them retries of the other half)
    make 12 runs, each with its audit entry, whatever the batches were. A retry racing
    its first request waits for it and gets its run (the key and the run are one row set)."""
    alice = env.auth("alice", "p1")
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        r = env.submit({**alice, "Idempotency-Key": f"key-{i % 12}"})
        with lock:
            answers.append((r.status_code, r.json()["id"]))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 24 and {status for status, _ in answers} == {201}
    ids = {run_id for _, run_id in answers}
    assert len(ids) == 12
    entries = env.service.db.log.entries(projects=["p1"], action="run.submit", limit=100)
    created = [e.target for e in entries if e.detail is None]
    assert sorted(created) == sorted(ids)
