"""Catalog search on SQLite and PostgreSQL: newest first (or by relevance), metadata
filters through the (key, value) index with lists, nested objects, numbers and values too
long for the index, names with LIKE's wildcards in them, the choice of the filter that
drives the search, and the backfill of the index by the migration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hexflow.data.errors import DataInputError
from hexflow.data.manifest import manifest_digest, search_text, version_pid
from hexflow.model.datasets import FileEntry, meta_pairs
from hexflow.store.data_db import DataDb
from hexflow.store.sql import sqlite_url
from tests.data_helpers import PG_SKIP, PG_URL, pg_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataDb]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "hexflow.db")
        opened = DataDb(url)
        yield opened
        opened.close()
        return
    if not PG_URL:
        pytest.skip(PG_SKIP)
    for url in pg_schema_url(PG_URL):
        opened = DataDb(url)
        try:
            yield opened
        finally:
            opened.close()


def row(name: str, i: int, meta: dict[str, Any], project: str = "p") -> dict[str, Any]:
    entries = [FileEntry(f"{name}-{i}.dat", i, f"blake3:{i:064x}")]
    digest = manifest_digest(entries)
    return {
        "project": project,
        "name": name,
        "entries": entries,
        "digest": digest,
        "pid": version_pid(project, name, digest),
        "metadata": meta,
        "search_text": search_text(name, meta, entries),
    }


def refs(found: list[Any]) -> list[str]:
    return [v.ref for v in found]


def test_meta_pairs_expand_lists_objects_and_scalars() -> None:
    pairs = meta_pairs(
        {
            "title": "T",
            "keywords": ["a", "b", "a"],
            "creators": [{"name": "Ada", "orcid": "0000"}, {"name": "Bob"}],
            "run": {"step": 5, "dt": 0.5, "ok": True, "none": None},
            "long": "x" * 500,
        }
    )
    assert pairs == {
        ("title", "T"),
        ("keywords", "a"),
        ("keywords", "b"),
        ("creators.name", "Ada"),
        ("creators.orcid", "0000"),
        ("creators.name", "Bob"),
        ("run.step", "5"),
        ("run.dt", "0.5"),
        ("run.ok", "true"),
    }


def test_results_are_newest_first_and_limited(db: DataDb) -> None:
    rows = [row(f"ds{i % 3}", i, {"keywords": ["ocean"], "n": i}) for i in range(12)]
    assert db.catalog.add_versions_bulk(rows, now=1.0) == 12
    found = db.catalog.search(project="p", words="ocean", limit=5)
    assert [v.metadata["n"] for v in found] == [11, 10, 9, 8, 7]
    found = db.catalog.search(project="p", meta={"keywords": "ocean"}, limit=3)
    assert [v.metadata["n"] for v in found] == [11, 10, 9]
    assert [v.metadata["n"] for v in db.catalog.search(project="p", name="ds1")] == [10, 7, 4, 1]
    assert db.catalog.search(project="other", words="ocean") == []


def test_relevance_puts_the_best_match_first(db: DataDb) -> None:
    rows = [
        row("a", 1, {"title": "ice ice ice sheet", "description": "ice ice"}),
        row("b", 2, {"title": "sheet", "description": "ice in one word among many others"}),
    ]
    db.catalog.add_versions_bulk(rows, now=1.0)
    assert refs(db.catalog.search(project="p", words="ice")) == ["b@1", "a@1"]
    assert refs(db.catalog.search(project="p", words="ice", order="relevance")) == [
        "a@1",
        "b@1",
    ]


def test_metadata_filters(db: DataDb) -> None:
    long_value = "y" * 300
    db.catalog.add_versions_bulk(
        [
            row("a", 1, {"creators": [{"name": "Ada"}], "step": 5, "ok": True, "note": long_value}),
            row("b", 2, {"creators": [{"name": "Bob"}], "step": 6, "ok": False, "note": "short"}),
        ],
        now=1.0,
    )
    search = db.catalog.search
    assert refs(search(project="p", meta={"creators.name": "Ada"})) == ["a@1"]
    assert refs(search(project="p", meta={"step": "6"})) == ["b@1"]
    assert refs(search(project="p", meta={"ok": "true"})) == ["a@1"]
    assert refs(search(project="p", meta={"note": long_value})) == ["a@1"]  # from the JSON
    assert refs(search(project="p", meta={"note": "short", "ok": "false"})) == ["b@1"]
    assert search(project="p", meta={"note": "short", "ok": "true"}) == []
    assert search(project="p", meta={"nothing": "here"}) == []


def test_names_with_like_wildcards_mean_themselves(db: DataDb) -> None:
    db.catalog.add_versions_bulk(
        [row("sea_ice", 1, {}), row("seaXice", 2, {}), row("100%-done", 3, {})], now=1.0
    )
    assert refs(db.catalog.search(project="p", name="sea_ice")) == ["sea_ice@1"]
    assert refs(db.catalog.search(project="p", name="100%")) == ["100%-done@1"]
    assert refs(db.catalog.search(project="p", name="sea*ice")) == ["seaXice@1", "sea_ice@1"]
    assert refs(db.catalog.search(project="p", name="SEA_")) == ["sea_ice@1"]  # any case


def test_every_filter_can_drive_and_the_answer_is_the_same(db: DataDb) -> None:
    """Common text with a rare metadata value, and the reverse: whichever filter is
    rarer drives the search, and the answer does not depend on it."""
    rows = []
    for i in range(300):
        meta = {
            "keywords": ["common"] + (["rare"] if i % 50 == 0 else []),
            "campaign": "everywhere",
            "title": "needle" if i % 60 == 0 else "hay",
        }
        rows.append(row(f"set-{i % 7}", i, meta))
    db.catalog.add_versions_bulk(rows, now=1.0)
    search = db.catalog.search
    a = search(project="p", words="common", meta={"keywords": "rare"}, limit=100)
    assert [int(v.name.split("-")[1]) for v in a] == [(i % 7) for i in (250, 200, 150, 100, 50, 0)]
    b = search(project="p", words="needle", meta={"campaign": "everywhere"}, limit=100)
    assert len(b) == 5 and all(v.metadata["title"] == "needle" for v in b)
    c = search(project="p", words="needle", name="set-0", meta={"keywords": "rare"})
    assert [v.metadata["title"] for v in c] == ["needle"] and c[0].name == "set-0"


def test_catalog_search_checks_its_input(tmp_path: Path) -> None:
    from hexflow.data import open_data
    from tests.data_helpers import storage_for

    with open_data(sqlite_url(tmp_path / "h.db"), storage_for(tmp_path)) as data:
        with pytest.raises(DataInputError, match="at least 1") as info:
            data.catalog.search("x", limit=0)
        assert info.value.fields["field"] == "limit"
        with pytest.raises(DataInputError, match="newest or relevance"):
            data.catalog.search("x", order="best")
        with pytest.raises(DataInputError, match="needs words"):
            data.catalog.search(name="x", order="relevance")


def test_the_migration_indexes_the_versions_already_there(tmp_path: Path) -> None:
    """A catalog written at revision 0008 gets its metadata index filled by 0009."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from hexflow.store.sql import _MIGRATIONS

    url = sqlite_url(tmp_path / "old.db")
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        conn.execute(
            text("INSERT INTO datasets (id, project, name, created_at) VALUES (1, 'p', 'old', 1)")
        )
        conn.execute(
            text(
                "INSERT INTO dataset_versions (id, dataset_id, number, digest, pid, created_at, "
                "size, files, metadata, search_text) VALUES (1, 1, 1, 'blake3:00', 'urn:x', 1, "
                "0, 0, :m, 'old')"
            ),
            {"m": '{"keywords": ["legacy"], "site": {"name": "alcf"}}'},
        )
        conn.execute(text("INSERT INTO catalog_fts (rowid, search_text) VALUES (1, 'old')"))
    engine.dispose()
    with DataDb(url) as db:
        assert refs(db.catalog.search(project="p", meta={"keywords": "legacy"})) == ["old@1"]
        assert refs(db.catalog.search(project="p", meta={"site.name": "alcf"})) == ["old@1"]
