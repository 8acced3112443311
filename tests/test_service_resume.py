"""A server that starts resumes the service runs a dead server left unfinished (their
finished tasks never run again), and leaves alone the runs a live process drives."""

from __future__ import annotations

import socket
from pathlib import Path

from fastapi.testclient import TestClient

from hexflow.engine.lease import my_owner_id
from hexflow.flow import runtime
from hexflow.flow.yamlspec import load_workflow_text
from hexflow.model import RunState, TaskState
from hexflow.service import Admin
from hexflow.service.api import create_app
from hexflow.settings import Settings
from hexflow.store.service_db import ServiceDb
from tests import service_env
from tests.service_env import HELLO, Env, make_config, seed_accounts, stop_runs

db_url = service_env.db_url  # a fixture

DEAD_OWNER = f"{socket.gethostname()}:999999999:1.000"


def _stored_run(settings: Settings, run_id: str, project: str = "p1", crashed: bool = True) -> None:
    """A run as a server leaves it when it dies: task a in flight, b waiting; owner dead."""
    wf = load_workflow_text(HELLO.decode())
    store = runtime.make_store(settings)
    try:
        engine = runtime.make_engine(settings, store)
        workdir = settings.home / "work" / project / run_id
        workdir.mkdir(parents=True)
        run = engine.create_run(
            wf.name,
            list(wf.specs.values()),
            workdir=str(workdir),
            run_id=run_id,
            config={"home": str(settings.home), "project": project, "submitted_by": "alice"},
        )
        if crashed:
            records = store.load_tasks(run.id)
            a = next(r for r in records if r.id == "a")
            a.set_state(TaskState.RUNNING)
            a.attempt = 1
            run.set_state(RunState.RUNNING)
            store.save(runs=[run], tasks=[a])
            assert store.claim_run(run.id, my_owner_id(), DEAD_OWNER)
    finally:
        store.close()


def test_runs_left_by_a_dead_server_are_resumed(tmp_path: Path, db_url: str) -> None:
    config = make_config(tmp_path, db_url)
    db = ServiceDb(db_url)
    try:
        admin = Admin(db)
        seed_accounts(admin)
        _stored_run(config.settings, "crashedrun01")
        _stored_run(config.settings, "liveowner001", crashed=False)  # owned by this process
        with TestClient(create_app(config)) as client:
            env = Env(client, admin, db_url)
            alice = env.auth("alice", "p1")
            final = env.wait_run(alice, "crashedrun01")
            assert final["state"] == "succeeded" and final["tasks"] == {"succeeded": 2}
            tasks = client.get("/api/v1/runs/crashedrun01/tasks", headers=alice).json()["items"]
            assert [t["attempt"] for t in tasks] == [1, 1]  # the lost attempt did not count
            live = client.get("/api/v1/runs/liveowner001", headers=alice).json()
            assert live["state"] == "pending"  # a live owner drives it (or will): not taken
            store = runtime.make_store(config.settings)
            try:
                assert store.claim_run("liveowner001", my_owner_id(), DEAD_OWNER)
            finally:
                store.close()
            stop_runs(env.service)  # cancels it in the store: its owner is dead now
            assert client.get("/api/v1/runs/liveowner001", headers=alice).json()["state"] == (
                "cancelled"
            )
    finally:
        db.close()
