"""The service applies the storage settings' lifecycle rules on a schedule (issue 6):
``--lifecycle-interval`` seconds apart, each action audited (actor ``lifecycle``), as
``hexflow data lifecycle`` does by hand; interval 0 turns the schedule off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hexflow.data.tiers import parse_storage
from hexflow.service import Admin
from hexflow.service.api import create_app
from hexflow.store.service_db import ServiceDb
from tests import service_env
from tests.helpers import wait_for
from tests.service_env import Env, make_config, seed_accounts, stop_runs

db_url = service_env.db_url  # fixture
RULES = [{"rule": "keep_last", "versions": 1, "tier": "qss"}]


def _env(tmp_path: Path, db_url: str, interval: float) -> Iterator[Env]:
    storage = parse_storage(
        {"tiers": {t: str(tmp_path / "tiers" / t) for t in ("qss", "pss")}, "lifecycle": RULES},
        home=str(tmp_path / "home"),
    )
    config = make_config(tmp_path, db_url, storage=storage, lifecycle_interval=interval)
    db = ServiceDb(db_url)
    seed_accounts(Admin(db, actor="cli:test"))
    try:
        with TestClient(create_app(config)) as client:
            e = Env(client, Admin(db, actor="cli:test"), db_url)
            try:
                yield e
            finally:
                wait_for(lambda: e.service.data.running() == 0, 60, "transfers to end")
                stop_runs(e.service)
    finally:
        db.close()


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    yield from _env(tmp_path, db_url, interval=0.2)


@pytest.fixture
def env_off(tmp_path: Path, db_url: str) -> Iterator[Env]:
    yield from _env(tmp_path, db_url, interval=0)


def _two_versions(env: Env) -> Path:
    """d@1 on qss and pss, d@2 on qss only: keep_last 1 on qss deletes d@1's qss replica."""
    qss = Path(env.service.data.storage.tier("qss").root) / "p1"
    for n in (1, 2):
        (qss / f"v{n}").mkdir(parents=True)
        (qss / f"v{n}" / "f.txt").write_text(f"version {n}\n")
    alice = env.auth("alice", "p1")

    def register(**body: Any) -> None:
        r = env.client.post("/api/v1/datasets", json=body, headers=alice)
        assert r.status_code in (200, 201), r.text

    register(name="d", source="qss:v1")
    register(name="d", source="qss:v1", tier="pss")
    register(name="d", source="qss:v2")
    return qss


def _replicas(env: Env, version: int) -> list[str]:
    got = env.client.get(f"/api/v1/datasets/d/versions/{version}", headers=env.auth("alice", "p1"))
    return sorted(r["tier"] for r in got.json()["replicas"])


def test_a_short_interval_applies_a_rule_and_audits_it(env: Env) -> None:
    qss = _two_versions(env)
    wait_for(lambda: _replicas(env, 1) == ["pss"], 30, "the schedule to apply keep_last")
    assert not (qss / "v1" / "f.txt").exists()  # the qss copy of d@1 is gone
    assert _replicas(env, 2) == ["qss"] and (qss / "v2" / "f.txt").exists()
    pss = Path(env.service.data.storage.tier("pss").root) / "p1"
    assert any(p.name == "f.txt" for p in pss.rglob("f.txt"))  # the other replica stays
    audit = env.service.data._db.catalog.audit_entries("p1")
    done = [(a["action"], a["outcome"], a["actor"]) for a in audit if a["actor"] == "lifecycle"]
    assert done == [("data.delete", "done", "lifecycle")]
    passes = env.service.lifecycle.passes
    wait_for(lambda: env.service.lifecycle.passes >= passes + 2, 30, "two more passes")
    audit = env.service.data._db.catalog.audit_entries("p1")
    assert [a["actor"] for a in audit].count("lifecycle") == 1  # nothing left to do


def test_interval_zero_turns_the_schedule_off(env_off: Env) -> None:
    _two_versions(env_off)
    assert env_off.service.lifecycle.interval == 0
    assert _replicas(env_off, 1) == ["pss", "qss"]
    assert env_off.service.lifecycle.passes == 0
    results = env_off.service.lifecycle.run_once()  # what a pass does, by hand
    assert [(r["action"], r["ref"], r["outcome"]) for r in results] == [("delete", "d@1", "done")]
    assert _replicas(env_off, 1) == ["pss"]
