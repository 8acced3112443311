"""Retention of the event log (``EventsConfig.retention``, ``hexflow server
--event-retention``): events older than the retention that every consumer has handled are
pruned in batches; a reader asking for an offset that is gone gets a 410 naming ``after``
(``after=0`` reads from the oldest event kept); with no retention nothing is pruned."""

from __future__ import annotations

import time
from pathlib import Path

from hexflow.events.log import EventLog
from hexflow.model.events import NewEvent
from hexflow.store.events_retention import PRUNED
from hexflow.store.service_db import ServiceDb
from tests import service_env
from tests.events_env import ALL, events_env, eventually, invoke, register

db_url = service_env.db_url  # fixture


def _ev(i: int, at: float) -> NewEvent:
    return NewEvent("test.tick", "p1", f"s{i}", at, {"i": i})


def test_only_old_events_every_consumer_handled_are_pruned(db_url: str) -> None:
    now = [1000.0]
    db = ServiceDb(db_url)
    try:
        log = EventLog(db, clock=lambda: now[0])
        logged = log.append([_ev(i, 100.0 + i) for i in range(30)])  # at 100..129
        seqs = [e.seq for e in logged]
        log.commit("fast", seqs[-1])
        log.commit("slow", seqs[19])  # has handled the first 20 only
        # retention 880 s at t=1000: events before 120 may go (the first 20), and the slow
        # consumer has handled those; nothing newer goes, whatever its age
        assert log.prune(880.0, batch=7) == 20  # in batches of 7, 7, 6
        assert log.pruned_upto() == seqs[19]
        assert [e.seq for e in log.read(0)] == seqs[20:]
        assert log.prune(880.0) == 0  # nothing more is old enough
        now[0] = 5000.0  # all are old now, but the slow consumer holds the rest back
        assert log.prune(880.0) == 0
        log.commit("slow", seqs[-1])
        assert log.prune(880.0) == 10
        assert log.read(0) == [] and log.pruned_upto() == seqs[-1]
        assert log.offset(PRUNED) == seqs[-1]
        # a new event gets a new number, never one of those pruned
        assert log.append([_ev(99, 5000.0)])[0].seq > seqs[-1]
    finally:
        db.close()


def test_a_reader_of_pruned_events_gets_410(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url, retention=0.5, prune_every=0.1) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        for x in range(3):
            assert invoke(env, alice, "add", {"x": x}, mode="sync").status_code == 200
        log = env.service.events.log
        first = env.client.get("/api/v1/events?after=0", headers=alice).json()["items"][0]["seq"]
        pruned = eventually(lambda: log.pruned_upto() > first and log.pruned_upto(), "a prune")
        r = env.client.get(f"/api/v1/events?after={first}", headers=alice)
        assert r.status_code == 410, r.text
        assert r.json()["field"] == "after" and f"after={pruned}" in r.json()["hint"]
        stream = env.client.get(f"/api/v1/events/stream?after={first}", headers=alice)
        assert stream.status_code == 410
        assert env.client.get("/api/v1/events?after=0", headers=alice).status_code == 200
        ok = env.client.get(f"/api/v1/events?after={pruned}", headers=alice)
        assert ok.status_code == 200


def test_without_retention_every_event_stays(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url, prune_every=0.05) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "add", "tests.events_fns:add")
        invoke(env, alice, "add", {"x": 1}, mode="sync")
        time.sleep(0.3)
        assert env.service.events.log.pruned_upto() == 0
        items = env.client.get("/api/v1/events?after=0", headers=alice).json()["items"]
        assert env.client.get(f"/api/v1/events?after={items[0]['seq']}", headers=alice).is_success


def test_a_bad_retention_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hexflow.cli.main import app

    env = {"HEXFLOW_HOME": str(tmp_path / "home")}
    for bad, says in (("soon", "not a duration"), ("-1d", "0 or more")):
        result = CliRunner().invoke(app, ["server", "--event-retention", bad], env=env)
        assert result.exit_code == 2, result.output
        assert says in result.output and "--event-retention" in result.output
