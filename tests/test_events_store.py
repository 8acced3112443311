"""The durable event log in the store: events are saved in the same transaction as the
changes they report (the engine's group commit), numbered in commit order, deduplicated
by key, readable from any offset — on every backend."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hexflow.engine import Engine
from hexflow.errors import StoreError
from hexflow.executors.local import LocalExecutor
from hexflow.model import TaskKind, TaskRecord, TaskSpec
from hexflow.model.events import NewEvent
from hexflow.store import Store
from tests import service_env
from tests.store_contract import make_run, make_spec, make_tasks
from tests.test_store import Backend, backend, postgresql_backend, sqlite_backend  # noqa: F401

RUN = make_run("run-1", config={"project": "p1"})
db_url = service_env.db_url  # fixture


@pytest.fixture
def store(backend: Backend) -> Store:  # noqa: F811 - the fixture of tests.test_store
    opened = backend.open()
    yield opened  # type: ignore[misc]
    opened.close()


def _ev(kind: str, key: str | None = None, at: float = 1.0) -> NewEvent:
    return NewEvent(kind, "p1", "run-1", at, {"n": kind}, key=key)


def test_events_are_numbered_and_read_from_any_offset(store: Store) -> None:
    store.create_run(RUN, make_tasks("run-1", make_spec("a")))
    store.save(events=[_ev("task.ready"), _ev("task.running")])
    store.save(events=[_ev("task.succeeded")])
    got = store.events_after(0)
    assert [e.seq for e in got] == [1, 2, 3]
    assert [e.kind for e in got] == ["task.ready", "task.running", "task.succeeded"]
    assert got[0].data == {"n": "task.ready"} and got[0].project == "p1"
    assert [e.seq for e in store.events_after(1)] == [2, 3]
    assert [e.seq for e in store.events_after(1, limit=1)] == [2]
    assert store.events_after(3) == []


def test_a_keyed_event_is_logged_once(store: Store) -> None:
    store.create_run(RUN, [])
    store.save(events=[_ev("schedule.fired", key="tick-1")])
    store.save(events=[_ev("schedule.fired", key="tick-1"), _ev("schedule.fired", key="tick-2")])
    assert [e.key for e in store.events_after(0)] == ["tick-1", "tick-2"]


def test_events_of_a_failed_save_are_not_logged(store: Store) -> None:
    store.create_run(RUN, [])
    with pytest.raises(StoreError):
        store.save(
            tasks=[TaskRecord(run_id="run-1", spec=make_spec("ghost"))],
            events=[_ev("task.running")],
        )
    assert store.events_after(0) == []


def test_the_log_survives_reopening(backend: Backend) -> None:  # noqa: F811
    first = backend.open()
    first.create_run(RUN, [])
    first.save(events=[_ev("run.running")])
    first.close()
    again = backend.open()
    try:
        again.save(events=[_ev("run.succeeded")])
        assert [(e.seq, e.kind) for e in again.events_after(0)] == [
            (1, "run.running"),
            (2, "run.succeeded"),
        ]
    finally:
        again.close()


def test_concurrent_writers_never_make_a_reader_skip(backend: Backend) -> None:  # noqa: F811
    """A reader that has seen seq N never finds a smaller seq appear later (PostgreSQL
    sequences alone do not promise that; the append lock does)."""
    if backend.name == "memory":
        pytest.skip("one process, one lock: nothing to interleave")
    stores = [backend.open() for _ in range(3)]
    stores[0].create_run(RUN, [])
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        reader = backend.open()
        last = 0
        while not stop.is_set() or last < 150:
            for ev in reader.events_after(last):
                seen.append(ev.seq)
                last = ev.seq
        reader.close()

    def write(s: Store) -> None:
        for i in range(50):
            s.save(events=[_ev("task.running", at=float(i))])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(s,)) for s in stores]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join(60)
    for s in stores:
        s.close()
    assert seen == list(range(1, 151))


def test_the_engine_logs_state_changes_in_its_group_commit(tmp_path: Path, store: Store) -> None:
    specs = [
        TaskSpec(id="a", name="a", kind=TaskKind.SHELL, command=("true",)),
        TaskSpec(id="b", name="b", kind=TaskKind.SHELL, command=("false",), deps=("a",)),
    ]
    engine = Engine(store, LocalExecutor(cpus=2, scratch_dir=str(tmp_path / "scratch")))
    engine.create_run("ev", specs, workdir=str(tmp_path), run_id="r1", config={"project": "p1"})
    final = engine.run("r1")
    events = store.events_after(0)
    kinds = [(e.subject, e.kind) for e in events]
    assert kinds[0] == ("r1", "run.running")
    assert kinds[-1] == ("r1", f"run.{final.state.value}") == ("r1", "run.failed")
    assert ("r1/a", "task.running") in kinds and ("r1/a", "task.succeeded") in kinds
    assert kinds.index(("r1/a", "task.succeeded")) < kinds.index(("r1/b", "task.running"))
    failed = next(e for e in events if e.kind == "task.failed")
    assert failed.data["task"] == "b" and failed.data["reason"] and failed.project == "p1"
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # what the log says is what the store says
    assert {t.id: t.state.value for t in store.load_tasks("r1")} == {
        "a": "succeeded",
        "b": "failed",
    }


def test_a_consumer_reads_only_the_kinds_it_wants(tmp_path: Path, db_url: str) -> None:
    from hexflow.events.log import EventLog
    from hexflow.store.service_db import ServiceDb

    db = ServiceDb(db_url)
    try:
        log = EventLog(db)
        log.append([_ev(k) for k in ("task.ready", "function.invoked", "task.done", "run.x")])
        log.append([_ev("function.finished"), _ev("webhook.received"), _ev("task_ready")])

        def kinds(patterns: list[str] | None, after: int = 0, limit: int = 500) -> tuple:
            found, upto = log.read_kinds(after, patterns, limit=limit)
            return [e.kind for e in found], upto

        assert kinds(None) == (
            ["task.ready", "function.invoked", "task.done", "run.x", "function.finished",
             "webhook.received", "task_ready"],
            7,
        )  # fmt: skip
        assert kinds(["*"], after=5) == (["webhook.received", "task_ready"], 7)
        assert kinds(["function.finished"]) == (["function.finished"], 7)
        # a pattern's prefix is taken literally ("_" is no wildcard), exact kinds too
        assert kinds(["task.*", "webhook.received"]) == (
            ["task.ready", "task.done", "webhook.received"],
            7,
        )
        assert kinds([]) == ([], 7)  # nothing wanted: passed over up to the head
        assert kinds(["task.*"], limit=1) == (["task.ready"], 1)  # a full page: up to it
        assert kinds(["task.*"], after=3) == ([], 7)
        assert kinds(["task.*"], after=7) == ([], 7)
    finally:
        db.close()
