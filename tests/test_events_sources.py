"""Events the data and sites subsystems produce: a new dataset version logs
``dataset.version_created`` in the transaction that creates it (the catalog, the data API,
bulk imports), and the server logs ``site.state_changed`` when a site of the sites file
changes state (an override, an outage, a health check) whether or not a run is active —
once per change, per project, across restarts and servers. Triggers fire on both: the
``dataset`` trigger kind, and ``event`` triggers on those kinds. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hexflow.data import open_data
from hexflow.data.checksum import ALGO
from hexflow.data.manifest import manifest_digest, search_text, version_pid
from hexflow.data.tiers import parse_storage
from hexflow.flow.sites import Overrides
from hexflow.model.datasets import FileEntry
from hexflow.model.events import DATASET_VERSION_CREATED, SITE_STATE_CHANGED
from hexflow.model.sites import SiteState
from hexflow.service import Admin, ServiceConfig
from hexflow.service.api import create_app
from hexflow.service.site_events import SiteEvents
from hexflow.settings import Settings
from hexflow.store import events_sql
from hexflow.store.service_db import ServiceDb
from tests import service_env
from tests.events_env import ALL, events_of, eventually, lines, register
from tests.service_env import Env, make_config, seed_accounts, stop_runs

db_url = service_env.db_url  # fixture


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    storage = parse_storage(
        {"tiers": {t: str(tmp_path / "tiers" / t) for t in ("qss", "pss")}},
        home=str(tmp_path / "home"),
    )
    config = make_config(tmp_path, db_url, storage=storage)
    db = ServiceDb(db_url)
    seed_accounts(Admin(db, actor="cli:test"))
    try:
        with TestClient(create_app(config)) as client:
            e = Env(client, Admin(db, actor="cli:test"), db_url)
            try:
                yield e
            finally:
                stop_runs(e.service)
    finally:
        db.close()


def put(env: Env, project: str, rel: str, data: bytes) -> None:
    path = Path(env.service.data.storage.tier("qss").root) / project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def add_dataset(env: Env, headers: dict[str, str], name: str, source: str) -> Any:
    return env.client.post(
        "/api/v1/datasets", json={"name": name, "source": source}, headers=headers
    )


# ---------------------------------------------------------------------- dataset versions


def test_a_new_dataset_version_is_an_event_and_fires_triggers(env: Env, tmp_path: Path) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "record", "tests.events_fns:record")
    calls, rules = tmp_path / "dataset.txt", tmp_path / "rule.txt"
    r = env.client.post(
        "/api/v1/triggers",
        json={"kind": "dataset", "function": "record", "config": {"dataset": "raw-*"},
              "args": {"path": str(calls), "tag": "ds"}},
        headers=alice,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["config"] == {"dataset": "raw-*", "where": {}}
    r = env.client.post(
        "/api/v1/triggers",
        json={"kind": "event", "function": "record",
              "config": {"kinds": ["dataset.version_created"], "where": {"version": 2}},
              "args": {"path": str(rules), "tag": "ev"}},
        headers=alice,
    )  # fmt: skip
    assert r.status_code == 201, r.text

    put(env, "p1", "a/x.txt", b"one")
    assert add_dataset(env, alice, "raw-a", "qss:a").status_code == 201
    assert add_dataset(env, alice, "raw-a", "qss:a").status_code == 200  # same content
    put(env, "p1", "a/x.txt", b"two")
    assert add_dataset(env, alice, "raw-a", "qss:a").json()["ref"] == "raw-a@2"
    assert add_dataset(env, alice, "cooked", "qss:a").status_code == 201  # not raw-*

    logged = [e for e in events_of(env, alice) if e["kind"] == DATASET_VERSION_CREATED]
    assert [(e["subject"], e["data"]["version"]) for e in logged] == [
        ("raw-a@1", 1),
        ("raw-a@2", 2),
        ("cooked@1", 1),
    ]
    first = logged[0]
    assert first["project"] == "p1" and first["data"]["dataset"] == "raw-a"
    assert first["data"]["pid"] and first["data"]["digest"].startswith(ALGO)
    assert first["data"]["files"] == 1 and first["data"]["size"] == 3
    eventually(lambda: len(lines(calls)) == 2, "the dataset trigger's two calls")
    eventually(lambda: len(lines(rules)) == 1, "the event trigger's call for version 2")
    # one call per version (the two calls may run side by side: in either order)
    assert sorted(line.split()[1] for line in lines(calls)) == sorted(
        str(e["seq"]) for e in logged[:2]
    )
    bob = env.auth("bob", "p2", ALL)
    assert [e for e in events_of(env, bob) if e["kind"] == DATASET_VERSION_CREATED] == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"dataset": ""}, "config.dataset"),
        ({"dataset": 3}, "config.dataset"),
        ({"name": "raw"}, "config.name"),
        ({"where": ["version"]}, "config.where"),
        ({"kinds": ["run.failed"]}, "config.kinds"),
    ],
)
def test_bad_dataset_trigger_settings_are_422(env: Env, config: dict, field: str) -> None:
    alice = env.auth("alice", "p1", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    r = env.client.post(
        "/api/v1/triggers",
        json={"kind": "dataset", "function": "add", "config": config},
        headers=alice,
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_the_catalog_logs_versions_in_their_own_transaction(tmp_path: Path, db_url: str) -> None:
    storage = parse_storage({"tiers": {"qss": str(tmp_path / "qss")}}, home=str(tmp_path / "home"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.txt").write_text("hello")
    with open_data(db_url, storage, project="lab") as data:
        db, catalog = data.db, data.catalog
        v, created = catalog.add("inbox", str(tmp_path / "in"), tier="qss")
        assert created and v.ref == "inbox@1"
        _, again = catalog.add("inbox", str(tmp_path / "in"), tier="qss")
        assert not again
        entries = [FileEntry("a.txt", 1, f"{ALGO}:00")]
        rows = [
            {
                "project": "lab",
                "name": f"bulk{i}",
                "entries": entries,
                "digest": manifest_digest(entries),
                "pid": version_pid("lab", f"bulk{i}", manifest_digest(entries)),
                "metadata": {"title": f"bulk {i}"},
                "search_text": search_text(f"bulk{i}", {}, entries),
            }
            for i in range(3)
        ]
        assert db.catalog.add_versions_bulk(rows, now=1.0) == 3
        assert db.catalog.add_versions_bulk(rows, now=2.0) == 0  # present: no new events
        with db.read() as conn:
            logged = events_sql.read(conn, 0, projects=["lab"])
    assert [(e.kind, e.subject) for e in logged] == [
        (DATASET_VERSION_CREATED, "inbox@1"),
        (DATASET_VERSION_CREATED, "bulk0@1"),
        (DATASET_VERSION_CREATED, "bulk1@1"),
        (DATASET_VERSION_CREATED, "bulk2@1"),
    ]
    assert logged[0].data["ref"] == "inbox@1" and logged[0].data["title"] == "inbox"
    assert logged[2].data["title"] == "bulk 1" and logged[2].at == 1.0


# ---------------------------------------------------------------------- site state


class FakeSites:
    """What a SiteMonitor would observe, set by the test."""

    def __init__(self, **states: SiteState) -> None:
        self.states = {name: (state, "") for name, state in states.items()}

    def set(self, name: str, state: SiteState, reason: str = "") -> None:
        self.states[name] = (state, reason)

    def __call__(self, now: float) -> dict[str, tuple[SiteState, str]]:
        return dict(self.states)


def site_events(db: ServiceDb) -> list[tuple[str | None, str, str, str, int]]:
    with db.read() as conn:
        found = events_sql.read(conn, 0)
    return [
        (e.project, e.subject, e.data["previous"], e.data["state"], e.data["change"])
        for e in found
        if e.kind == SITE_STATE_CHANGED
    ]


@pytest.fixture
def sdb(db_url: str) -> Iterator[ServiceDb]:
    db = ServiceDb(db_url)
    seed_accounts(Admin(db, actor="cli:test"))
    try:
        yield db
    finally:
        db.close()


def test_site_changes_are_logged_once_per_change_and_project(sdb: ServiceDb) -> None:
    up, down, degraded = SiteState.UP, SiteState.DOWN, SiteState.DEGRADED
    sites = FakeSites(alpha=up, beta=up, gamma=down)
    served = {"alpha": {"p1"}, "beta": set(), "gamma": {"p2"}}  # beta: every project
    watch = SiteEvents(sdb, sites, served, clock=lambda: 100.0)
    first = watch.check()  # up at first sight: nothing; gamma down at first sight: a change
    assert [(e.project, e.subject, e.data["state"]) for e in first] == [("p2", "gamma", "down")]
    assert watch.check() == []
    sites.set("alpha", down, "cooling failure")
    sites.set("beta", degraded, "slow controller (1 in a row)")
    sites.set("delta", down)  # not a site of the sites file: ignored
    logged = watch.check()
    assert {(e.project, e.subject, e.data["state"]) for e in logged} == {
        ("p1", "alpha", "down"),
        ("p1", "beta", "degraded"),
        ("p2", "beta", "degraded"),
    }
    alpha = next(e for e in logged if e.subject == "alpha")
    assert alpha.data["reason"] == "cooling failure" and alpha.data["source"] == "monitor"
    sites.set("beta", degraded, "slow controller (2 in a row)")  # same state: no event
    assert watch.check() == []
    sites.set("alpha", up)
    assert [(e.subject, e.data["previous"], e.data["state"]) for e in watch.check()] == [
        ("alpha", "down", "up")
    ]

    # A restarted server resumes from the log: no change logged twice, numbering goes on.
    again = SiteEvents(sdb, sites, served, clock=lambda: 200.0)
    assert again.check() == []
    sites.set("alpha", down, "again")
    assert [e.data["change"] for e in again.check()] == [3]

    # Two servers watching the same sites log each change once.
    one = SiteEvents(sdb, sites, served, clock=lambda: 300.0)
    two = SiteEvents(sdb, sites, served, clock=lambda: 300.0)
    one.check(), two.check()
    sites.set("gamma", up)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def race(watcher: SiteEvents) -> None:
        barrier.wait()
        results.append(len(watcher.check()))

    threads = [threading.Thread(target=race, args=(w,)) for w in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 1]
    gamma = [row for row in site_events(sdb) if row[1] == "gamma"]
    assert gamma == [("p2", "gamma", "up", "down", 1), ("p2", "gamma", "down", "up", 2)]


def test_the_server_logs_site_changes_and_triggers_fire(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "sites.yaml").write_text(
        "sites:\n  alpha: {executor: local, projects: [p1]}\n  beta: {executor: local}\n"
    )
    settings = Settings.from_env(
        env={
            "HEXFLOW_HOME": str(tmp_path / "home"),
            "HEXFLOW_DB": db_url,
            "HEXFLOW_CPUS": "1",
            "HEXFLOW_SITES": str(tmp_path / "sites.yaml"),
        },
        cwd=tmp_path,
    )
    db = ServiceDb(db_url)
    admin = Admin(db, actor="cli:test")
    seed_accounts(admin)
    calls = tmp_path / "calls.txt"
    config = ServiceConfig(settings=settings, site_check_interval=0.05, auth_cache_ttl=0.0)
    try:
        with TestClient(create_app(config)) as client:
            env = Env(client, admin, db_url)
            alice, bob = env.auth("alice", "p1", ALL), env.auth("bob", "p2", ALL)
            register(env, alice, "record", "tests.events_fns:record")
            r = client.post(
                "/api/v1/triggers",
                json={"kind": "event", "function": "record",
                      "config": {"kinds": ["site.state_changed"],
                                 "where": {"site": "alpha", "state": "down"}},
                      "args": {"path": str(calls), "tag": "site"}},
                headers=alice,
            )  # fmt: skip
            assert r.status_code == 201, r.text
            Overrides(settings.home).set("alpha", SiteState.DOWN, "cooling failure")  # the CLI
            Overrides(settings.home).set("beta", SiteState.DEGRADED, "maintenance")

            def changes(headers: dict[str, str]) -> list[tuple[str, str]]:
                return [
                    (e["subject"], e["data"]["state"])
                    for e in events_of(env, headers)
                    if e["kind"] == SITE_STATE_CHANGED
                ]

            eventually(lambda: len(changes(alice)) == 2, "alice's two site events")
            assert sorted(changes(alice)) == [("alpha", "down"), ("beta", "degraded")]
            eventually(lambda: changes(bob) == [("beta", "degraded")], "bob's one")  # not alpha
            eventually(lambda: len(lines(calls)) == 1, "the trigger's call")
            assert lines(calls)[0].split()[2] == SITE_STATE_CHANGED
            Overrides(settings.home).clear("alpha")
            eventually(lambda: ("alpha", "up") in changes(alice), "alpha up again")
            assert len(lines(calls)) == 1  # where: down only
            stop_runs(env.service)
    finally:
        db.close()
    assert os.path.exists(calls)
