"""The dataset catalog on every SQL backend (SQLite with FTS5; PostgreSQL with tsvector when
HEXFLOW_TEST_POSTGRES_URL is set): content-addressed versions, metadata, search, replicas,
provenance and lineage, lifecycle actions, and RO-Crate export checked on what it writes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hexflow.data import DataServices, open_data
from hexflow.data.errors import DataInputError, DataNotFound
from hexflow.data.lifecycle_run import LifecycleRunner
from hexflow.data.rocrate_export import check_crate, export_version
from hexflow.model.datasets import FileEntry
from hexflow.store.sql import sqlite_url
from tests.data_helpers import (
    PG_SKIP,
    PG_URL,
    S3_URL,
    pg_schema_url,
    read_tree,
    storage_for,
    write_tree,
)

LICENSE = "https://spdx.org/licenses/CC-BY-4.0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "hexflow.db")
        return
    if not PG_URL:
        pytest.skip(PG_SKIP)
    yield from pg_schema_url(PG_URL)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def data(db_url: str, tmp_path: Path, clock: Clock) -> Iterator[DataServices]:
    rules = [
        {"rule": "run_finished", "from": "qss", "to": "pss"},
        {"rule": "unread", "days": 30, "from": "pss", "to": "archive"},
        {"rule": "keep_last", "versions": 1, "tier": "archive"},
    ]
    storage = storage_for(tmp_path, s3_url=S3_URL, extra={"lifecycle": rules})
    services = open_data(db_url, storage, project="climate", clock=clock)
    yield services
    services.close()


def make(tmp_path: Path, name: str, files: dict[str, bytes]) -> str:
    write_tree(tmp_path / name, files)
    return str(tmp_path / name)


def test_identical_content_is_one_version_and_new_content_a_new_one(
    data: DataServices, tmp_path: Path
) -> None:
    cat = data.catalog
    src = make(tmp_path, "v1", {"a.txt": b"alpha", "sub/b.txt": b"beta"})
    v1, created = cat.add("obs", src, metadata={"title": "Observations", "license": LICENSE})
    assert created and v1.ref == "obs@1" and v1.files == 2 and v1.size == 9
    again, created = cat.add(
        "obs", make(tmp_path, "copy", {"sub/b.txt": b"beta", "a.txt": b"alpha"})
    )
    assert not created and again.digest == v1.digest and again.pid == v1.pid
    v2, created = cat.add("obs", make(tmp_path, "v2", {"a.txt": b"alpha!"}))
    assert created and v2.number == 2
    assert cat.resolve("obs").number == 2 and cat.resolve("obs@1") == v1
    assert cat.resolve(v1.pid) == v1
    assert cat.resolve("obs@" + v1.digest.split(":")[1][:10]) == v1
    assert [e.path for e in cat.files(v1)] == ["a.txt", "sub/b.txt"]
    rep = cat.replicas(v1)
    assert [(r.tier, r.location) for r in rep] == [("pss", f"datasets/obs/{v1.digest[7:23]}")]
    assert read_tree(tmp_path / "pss/climate" / rep[0].location) == {
        "a.txt": b"alpha",
        "sub/b.txt": b"beta",
    }
    assert cat.verify(v1, rep[0]) == []
    (tmp_path / "pss/climate" / rep[0].location / "a.txt").write_bytes(b"alphA")
    assert cat.verify(v1, rep[0]) == ["a.txt: content differs from the manifest"]
    with pytest.raises(DataNotFound, match="no version 'obs@9'"):
        cat.resolve("obs@9")
    with pytest.raises(DataInputError, match="not a dataset reference"):
        cat.resolve("bad name@1")
    assert [d["name"] for d in cat.datasets()] == ["obs"]


def test_registered_in_place_from_a_tier(data: DataServices, tmp_path: Path) -> None:
    data.transfers.copy(make(tmp_path, "run", {"x.nc": b"x" * 100}), "qss:run7")
    v, _ = data.catalog.add("raw", "qss:run7")
    assert [(r.tier, r.location) for r in data.catalog.replicas(v)] == [("qss", "run7")]


def test_metadata_is_checked(data: DataServices, tmp_path: Path) -> None:
    with pytest.raises(DataInputError, match="creators"):
        data.catalog.add("x", make(tmp_path, "m", {"a": b"a"}), metadata={"creators": [3]})


def test_search_by_text_name_and_metadata(data: DataServices, tmp_path: Path) -> None:
    cat = data.catalog
    cat.add(
        "ocean-temperature",
        make(tmp_path, "o", {"sst.nc": b"1"}),
        metadata={
            "title": "Sea surface temperature",
            "description": "Daily gridded measurements from Argo floats",
            "keywords": ["ocean", "climate"],
            "creators": ["Ada Lovelace"],
            "instrument": {"platform": "argo"},
        },
    )
    cat.add(
        "land-precip",
        make(tmp_path, "l", {"rain.csv": b"2"}),
        metadata={"title": "Precipitation over land", "keywords": ["climate"]},
    )
    refs = lambda found: sorted(v.ref for v in found)  # noqa: E731
    assert refs(cat.search("temperature")) == ["ocean-temperature@1"]
    assert refs(cat.search("measurement")) == ["ocean-temperature@1"]  # stemmed
    assert refs(cat.search("lovelace")) == ["ocean-temperature@1"]
    assert refs(cat.search("sst")) == ["ocean-temperature@1"]  # file names
    assert refs(cat.search("precipitation land")) == ["land-precip@1"]
    assert refs(cat.search(name="precip")) == ["land-precip@1"]
    assert refs(cat.search(name="*-temp*")) == ["ocean-temperature@1"]
    assert refs(cat.search(meta={"keywords": "climate"})) == [
        "land-precip@1",
        "ocean-temperature@1",
    ]
    assert refs(cat.search(meta={"instrument.platform": "argo"})) == ["ocean-temperature@1"]
    assert refs(cat.search("climate", meta={"keywords": "ocean"})) == ["ocean-temperature@1"]
    assert cat.search("nothing-like-this") == []
    assert cat.search('"unbalanced (quote AND') == []  # user text never breaks the query
    with pytest.raises(DataInputError):
        cat.search(meta={"bad key!": "x"})


def test_provenance_and_lineage_both_ways(data: DataServices, tmp_path: Path) -> None:
    cat = data.catalog
    raw, _ = cat.add("raw", make(tmp_path, "r", {"r": b"raw"}))
    cal, _ = cat.add("calib", make(tmp_path, "c", {"c": b"cal"}))
    clean, _ = cat.add(
        "clean",
        make(tmp_path, "k", {"k": b"clean"}),
        produced_by=("run1", "clean"),
        inputs=["raw@1", "calib@1"],
    )
    cat.add(
        "model",
        make(tmp_path, "m", {"m": b"model"}),
        produced_by=("run2", "train"),
        inputs=["clean@1"],
    )
    up = cat.lineage("model@1", "upstream")
    assert {(e.run_id, e.task_id, e.input, e.output, e.depth) for e in up} == {
        ("run2", "train", "clean@1", "model@1", 1),
        ("run1", "clean", "raw@1", "clean@1", 2),
        ("run1", "clean", "calib@1", "clean@1", 2),
    }
    assert [(e.output, e.depth) for e in cat.lineage("model@1", "upstream", depth=1)] == [
        ("model@1", 1)
    ]
    down = cat.lineage("raw@1", "downstream")
    assert {(e.input, e.output) for e in down} == {("raw@1", "clean@1"), ("clean@1", "model@1")}
    assert cat.lineage(cal.ref, "upstream") == []
    assert raw.ref == "raw@1" and clean.ref == "clean@1"
    with pytest.raises(DataInputError):
        cat.lineage("raw@1", "sideways")


def test_ro_crate_export_is_valid_and_complete(data: DataServices, tmp_path: Path) -> None:
    cat = data.catalog
    cat.add("raw", make(tmp_path, "r", {"r.dat": b"raw"}))
    v, _ = cat.add(
        "clean",
        make(tmp_path, "k", {"data/k.csv": b"a,b\n1,2\n", "README.txt": b"read me"}),
        metadata={
            "title": "Clean table",
            "description": "Cleaned",
            "creators": ["Grace Hopper"],
            "keywords": ["table"],
            "license": LICENSE,
        },
        produced_by=("run9", "clean"),
        inputs=["raw@1"],
    )
    out = tmp_path / "crate"
    report = export_version(cat, "clean@1", out)
    assert report["files"] == 2 and check_crate(out) == []
    doc = json.loads((out / "ro-crate-metadata.json").read_text())
    graph = {e["@id"]: e for e in doc["@graph"]}
    root = graph["./"]
    assert root["name"] == "Clean table" and root["identifier"] == v.pid
    assert root["license"] == {"@id": LICENSE}
    assert {p["@id"] for p in root["hasPart"]} == {
        "data/k.csv",
        "README.txt",
        "hexflow-manifest.json",
    }
    assert graph["data/k.csv"]["identifier"] == cat.files(v)[1].hash
    action = graph["#run-run9-clean"]
    assert action["@type"] == "CreateAction" and action["result"] == {"@id": "./"}
    raw_pid = cat.resolve("raw@1").pid
    assert action["object"] == [{"@id": raw_pid}] and graph[raw_pid]["name"] == "raw@1"
    from rocrate.rocrate import ROCrate

    crate = ROCrate(out)  # the library reads back what it wrote
    assert crate.name == "Clean table"
    assert {e.id for e in crate.data_entities} >= {"data/k.csv", "README.txt"}
    # damage is found by the checker
    (out / "README.txt").write_bytes(b"changed")
    assert check_crate(out) == ["README.txt: content does not match its digest"]
    with pytest.raises(DataInputError, match="no license"):
        export_version(cat, "raw@1", tmp_path / "crate2")
    with pytest.raises(DataInputError, match="not empty"):
        export_version(cat, "clean@1", out)


def test_lifecycle_plans_then_moves_and_deletes_with_audit(
    data: DataServices, tmp_path: Path, clock: Clock
) -> None:
    cat = data.catalog
    data.transfers.copy(make(tmp_path, "out", {"o.bin": b"o" * 1000}), "qss:runs/r1")
    out, _ = cat.add("output", "qss:runs/r1", produced_by=("r1", "sim"))
    old, _ = cat.add("old", make(tmp_path, "old", {"x": b"x"}))  # on pss
    finished = {"r1"}
    runner = LifecycleRunner(cat, finished_runs=lambda ids: frozenset(set(ids) & finished))
    clock.now += 40 * 86400  # 40 days later; 'old' was never read
    plan = runner.plan(clock.now)
    assert [(a.kind, a.ref, a.src, a.dst) for a in plan] == [
        ("move", "output@1", "qss", "pss"),
        ("move", "old@1", "pss", "archive"),
    ]
    assert [(r.tier) for r in cat.replicas(out)] == ["qss"]  # a plan changes nothing
    results = runner.apply(plan)
    assert [r["outcome"] for r in results] == ["done", "done"]
    assert [r.tier for r in cat.replicas(out)] == ["pss"]
    assert not (tmp_path / "qss/climate/runs/r1/o.bin").exists()
    assert (tmp_path / "pss/climate/runs/r1/o.bin").read_bytes() == b"o" * 1000
    assert [r.tier for r in cat.replicas(old)] == ["archive"]
    assert cat.verify(old, cat.replicas(old)[0]) == []
    audit = data.db.catalog.audit_entries("climate")
    assert [(a["action"], a["outcome"], a["actor"]) for a in audit] == [
        ("data.move", "done", "lifecycle"),
        ("data.move", "done", "lifecycle"),
    ]
    assert runner.plan(clock.now) == []  # nothing left to do


def test_many_versions_bulk_and_search_stays_correct(data: DataServices) -> None:
    from hexflow.data.manifest import manifest_digest, search_text, version_pid

    rows = []
    for i in range(300):
        entries = [FileEntry(f"f{i}.dat", i, f"blake3:{i:064x}")]
        digest = manifest_digest(entries)
        meta = {"title": f"sample {i}", "keywords": ["even" if i % 2 == 0 else "odd"]}
        rows.append(
            {
                "project": "climate",
                "name": f"ds{i % 10}",
                "entries": entries,
                "digest": digest,
                "pid": version_pid("climate", f"ds{i % 10}", digest),
                "metadata": meta,
                "search_text": search_text(f"ds{i % 10}", meta, entries),
            }
        )
    t0 = time.perf_counter()
    assert data.db.catalog.add_versions_bulk(rows, now=1.0) == 300
    assert time.perf_counter() - t0 < 30
    assert len(data.catalog.search("odd", limit=500)) == 150
    assert len(data.catalog.versions("ds3")) == 30
