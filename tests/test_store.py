"""The Store contract on every backend, and what is particular to the SQL store.

Backends: MemoryStore, SqlStore on a SQLite file, and SqlStore on PostgreSQL when
HEXFLOW_TEST_POSTGRES_URL is set (each test gets its own schema, dropped afterwards).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, text

import hexflow.store.sql as sql_module
from hexflow.errors import StoreError
from hexflow.model import RunState, TaskState
from hexflow.store import MemoryStore, SqlStore, Store, open_store, sqlite_url
from hexflow.store.data_schema import include_name
from hexflow.store.schema import SCHEMA_HEAD, metadata
from tests.store_contract import StoreContract, finished, make_run, make_spec, make_tasks

POSTGRES_ENV = "HEXFLOW_TEST_POSTGRES_URL"
POSTGRES_SKIP = (
    f"PostgreSQL backend not configured: set {POSTGRES_ENV} to a SQLAlchemy URL such as "
    "postgresql+psycopg://user@localhost/hexflow_test (needs `pip install -e .[postgres]`)"
)
MIGRATIONS = Path(sql_module.__file__).parent / "migrations"


@dataclass
class Backend:
    """A fresh, empty database; ``open`` gives a new store on it each time it is called."""

    name: str
    open: Callable[[], Store]


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    url = sqlite_url(tmp_path / "hexflow.db")
    return Backend("sqlite", lambda: SqlStore(url))


@pytest.fixture
def postgresql_backend() -> Iterator[Backend]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(POSTGRES_SKIP)
    schema = f"hexflow_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = (
        make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        yield Backend("postgresql", lambda: SqlStore(scoped))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        shared = MemoryStore()  # memory "reopens" as the same store: nothing persists
        return Backend("memory", lambda: shared)
    backend: Backend = request.getfixturevalue(f"{request.param}_backend")
    return backend


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(f"{request.param}_backend")
    return backend


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


class TestStoreContract(StoreContract):
    """Every contract test, once per backend."""


# ---------------------------------------------------------------- every SQL backend


def test_data_survives_closing_and_reopening(sql_backend: Backend) -> None:
    first = sql_backend.open()
    run = make_run(config={"k": [1, 2]})
    first.create_run(run, make_tasks(run.id, make_spec("a"), make_spec("b", None, "a")))
    a = first.get_task(run.id, "a")
    run.state = RunState.RUNNING
    first.save(runs=[run], tasks=[finished(a)])
    req = first.request_cancel(run.id, "b")
    first.close()

    second = sql_backend.open()
    try:
        assert second.get_run("run") == run
        assert second.load_tasks(run.id) == [
            finished(a),
            *make_tasks(run.id, make_spec("b", None, "a")),
        ]
        assert [c.id for c in second.pending_cancels(run.id)] == [req]
        hit = second.find_cached("key-a")
        assert hit is not None and hit.state is TaskState.SUCCEEDED
        # a reopened store keeps appending tasks after the ones already there
        second.save(new_tasks=make_tasks(run.id, make_spec("c")))
        assert [t.id for t in second.load_tasks(run.id)] == ["a", "b", "c"]
    finally:
        second.close()


def test_migrated_schema_matches_schema_py(sql_backend: Backend) -> None:
    store = sql_backend.open()
    store.close()
    engine = create_engine(store.url)
    try:
        with engine.connect() as conn:
            # the full-text objects of the catalog are not in ``metadata`` (data_schema.py)
            context = MigrationContext.configure(conn, opts={"include_name": include_name})
            assert context.get_current_revision() == SCHEMA_HEAD
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


# ---------------------------------------------------------------- SQLite


def test_schema_head_is_the_alembic_head() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert scripts.get_heads() == [SCHEMA_HEAD]
    assert scripts.get_current_head() == SCHEMA_HEAD


def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    SqlStore(sqlite_url(db)).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_creates_the_schema_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic import command

    upgrades: list[str] = []
    real_upgrade = command.upgrade

    def counting_upgrade(config: object, revision: str, **kw: object) -> None:
        upgrades.append(revision)
        real_upgrade(config, revision, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(command, "upgrade", counting_upgrade)
    db = tmp_path / "nested" / "dir" / "fresh.db"  # parent folders are created
    assert not db.exists()

    SqlStore(sqlite_url(db)).close()
    assert upgrades == ["head"]
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"runs", "tasks", "cancel_requests", "alembic_version"} <= tables
    assert version == SCHEMA_HEAD

    second = SqlStore(sqlite_url(db))  # at head already: Alembic is not run again
    second.create_run(make_run(), [])
    assert second.get_run("run-1").id == "run-1"
    second.close()
    assert upgrades == ["head"]


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    memory = open_store("memory://")
    assert isinstance(memory, MemoryStore)
    url = sqlite_url(tmp_path / "x.db")
    sql = open_store(url)
    try:
        assert isinstance(sql, SqlStore)
        assert sql.url == url
    finally:
        sql.close()


def test_unopenable_database_raises_store_error(tmp_path: Path) -> None:
    # a directory cannot be opened as a SQLite database file
    with pytest.raises(StoreError, match="cannot open the store at") as info:
        SqlStore(sqlite_url(tmp_path))
    assert info.value.hint is not None and "HEXFLOW_DB" in info.value.hint


def test_an_older_schema_is_upgraded_in_place_without_losing_data(tmp_path: Path) -> None:
    """A store written at revision 0001 (before task joins) opens and keeps its rows."""
    import sqlite3

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    path = tmp_path / "old.db"
    engine = create_engine(sqlite_url(path))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.exec_driver_sql(
            "INSERT INTO runs (id, name, state, created_at, workdir, cancel_requested, config) "
            "VALUES ('r1', 'old', 'succeeded', 1.0, '/tmp', 0, '{}')"
        )
    engine.dispose()
    store = SqlStore(sqlite_url(path))
    try:
        assert store.get_run("r1").name == "old"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
        version = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert "join_id" in columns and version == SCHEMA_HEAD


class _Evil:
    """Unpickling this runs a command: what a tampered store row could hold."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_reading_a_tampered_spec_runs_no_code(tmp_path: Path) -> None:
    import pickle

    from hexflow.store.rows import load_spec

    marker = tmp_path / "pwned"
    store = SqlStore(sqlite_url(tmp_path / "hexflow.db"))
    try:
        run = make_run("r1")
        store.create_run(run, make_tasks("r1", make_spec("a")))
        with sqlite3.connect(tmp_path / "hexflow.db") as db:
            db.execute("UPDATE tasks SET spec = ?", (pickle.dumps(_Evil(str(marker))),))
        fresh = SqlStore(sqlite_url(tmp_path / "hexflow.db"))  # no cached specs
        try:
            with pytest.raises(StoreError, match=r"refers to posix\.system"):
                fresh.load_tasks("r1")
        finally:
            fresh.close()
    finally:
        store.close()
    assert not marker.exists()
    spec = make_spec("b")
    assert load_spec(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)) == spec


def test_a_new_sqlite_store_appears_whole(tmp_path: Path) -> None:
    """The schema is built beside the database and linked into place: no temporary file is
    left, and a store that already exists is opened, never replaced."""
    from hexflow.store import open_store

    db = tmp_path / "sub" / "hexflow.db"
    store = open_store(f"sqlite:///{db}")
    store.close()
    assert db.exists()
    assert [p.name for p in db.parent.iterdir() if ".new-" in p.name] == []
    before = db.stat().st_ino
    open_store(f"sqlite:///{db}").close()
    assert db.stat().st_ino == before
