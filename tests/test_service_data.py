"""The data API (/api/v1/storage, /transfers, /datasets, /search) in-process, on SQLite and
PostgreSQL: transfers run in the background and are followed, resumed and refused with
the reason; versions are registered from a tier, found, shown with their lineage and
exported as RO-Crates; every route keeps each project's data to its members, checks its
scope before its input, names the field of bad input, and mutating requests are audited."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hexflow.data.rocrate_export import check_crate
from hexflow.data.tiers import parse_storage
from hexflow.service import Admin
from hexflow.service.api import create_app
from hexflow.store.service_db import ServiceDb
from tests import service_env
from tests.helpers import wait_for
from tests.service_env import Env, make_config, seed_accounts, stop_runs

db_url = service_env.db_url  # fixture
LICENSE = "https://spdx.org/licenses/CC-BY-4.0"


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    """The service with its tiers under tmp_path/tiers and a quota of 1 MB for p2 on qss."""
    storage = parse_storage(
        {
            "tiers": {t: str(tmp_path / "tiers" / t) for t in ("qss", "pss", "archive")},
            "quotas": {"p2": {"qss": "1M"}},
        },
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
                wait_for(lambda: e.service.data.running() == 0, 60, "transfers to end")
                stop_runs(e.service)
    finally:
        db.close()


def tier_dir(env: Env, tier: str, project: str) -> Path:
    return Path(env.service.data.storage.tier(tier).root) / project


def put(env: Env, tier: str, project: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = tier_dir(env, tier, project) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


RUN1 = {"fields/u.bin": os.urandom(200_000), "log.txt": b"t=0\n", "notes/readme.md": b"# run 1\n"}


def transfer(env: Env, headers: dict[str, str], src: str, dst: str, **params: Any) -> Any:
    return env.client.post(
        "/api/v1/transfers",
        json={"source": src, "destination": dst},
        headers=headers,
        params=params,
    )


def wait_transfer(env: Env, headers: dict[str, str], transfer_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        got: dict[str, Any] = env.client.get(
            f"/api/v1/transfers/{transfer_id}", headers=headers
        ).json()
        return got if got["state"] in ("succeeded", "failed") else None

    result: dict[str, Any] = wait_for(ended, 60, f"transfer {transfer_id}", every=0.05)
    return result


def register(env: Env, headers: dict[str, str], **body: Any) -> Any:
    return env.client.post("/api/v1/datasets", json=body, headers=headers)


# ---------------------------------------------------------------------- storage, transfers


def test_storage_shows_the_projects_usage_and_quota(env: Env) -> None:
    put(env, "qss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    put(env, "qss", "p2", {"x": b"12345"})
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    body = env.client.get("/api/v1/storage", headers=alice).json()
    qss = {t["tier"]: t for t in body["tiers"]}["qss"]
    assert body["project"] == "p1" and body["site"] == "local"
    assert qss["used"] == sum(map(len, RUN1.values())) and qss["files"] == 3
    assert qss["quota"] is None
    theirs = {t["tier"]: t for t in env.client.get("/api/v1/storage", headers=bob).json()["tiers"]}
    assert theirs["qss"]["used"] == 5 and theirs["qss"]["quota"] == 1 << 20
    assert theirs["qss"]["quota_used"] == pytest.approx(5 / (1 << 20))
    viewer = env.auth("carol", "p1", "read")
    assert env.client.get("/api/v1/storage", headers=viewer).status_code == 200


def test_a_transfer_runs_in_the_background_and_is_followed(env: Env) -> None:
    put(env, "qss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    alice = env.auth("alice", "p1")
    r = transfer(env, alice, "qss:run1", "pss:copies/run1")
    assert r.status_code == 202, r.text
    started = r.json()
    assert r.headers["location"] == f"/api/v1/transfers/{started['id']}"
    assert started["files_total"] == 0 or started["state"] in ("queued", "running", "succeeded")
    done = wait_transfer(env, alice, started["id"])
    assert done["state"] == "succeeded" and done["files_done"] == 3
    assert {i["state"] for i in done["items"]} == {"done"}
    assert all(i["hash"].startswith(("blake3:", "sha256:")) for i in done["items"])
    for rel, data in RUN1.items():
        assert (tier_dir(env, "pss", "p1") / "copies/run1" / rel).read_bytes() == data
    listed = env.client.get("/api/v1/transfers", headers=alice).json()["items"]
    assert [t["id"] for t in listed] == [started["id"]] and listed[0]["items"] is None
    # resuming a finished transfer returns it as it is
    again = env.client.post(f"/api/v1/transfers/{started['id']}/resume", headers=alice)
    assert again.status_code == 202 and again.json()["state"] == "succeeded"


def test_a_planned_transfer_is_resumed(env: Env) -> None:
    """A transfer left unfinished (planned here and never run, as after a crash) is
    resumed through the API and completes."""
    put(env, "qss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    manager = env.service.data._data("p1").transfers
    rec = manager.plan("qss:run1", "archive:run1")
    alice = env.auth("alice", "p1")
    r = env.client.post(f"/api/v1/transfers/{rec.id}/resume", headers=alice)
    assert r.status_code == 202, r.text
    assert wait_transfer(env, alice, rec.id)["state"] == "succeeded"
    assert (tier_dir(env, "archive", "p1") / "run1/log.txt").read_bytes() == RUN1["log.txt"]


def test_transfers_that_cannot_be_done_say_why(env: Env) -> None:
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    put(env, "pss", "p2", {"big.bin": b"x" * 2_000_000})
    r = transfer(env, bob, "pss:big.bin", "qss:big.bin")
    assert r.status_code == 409 and "quota" in r.json()["message"]
    r = transfer(env, alice, "qss:nothing/here", "pss:x")
    assert r.status_code == 404 and "no such file" in r.json()["message"]
    r = transfer(env, alice, "/etc/passwd", "pss:x")
    assert r.status_code == 422 and r.json()["field"] == "source"
    assert "not a tier location" in r.json()["message"]
    r = transfer(env, alice, "qss:a", "nosuch:x")
    assert r.status_code == 422 and r.json()["field"] == "destination"
    r = transfer(env, alice, "qss:a/../../p2/x", "pss:x")
    assert r.status_code == 422 and r.json()["field"] == "source"
    r = env.client.post("/api/v1/transfers", json={"source": "qss:a"}, headers=alice)
    assert r.status_code == 422 and r.json()["field"] == "body.destination"
    r = env.client.get("/api/v1/transfers/not-an-id", headers=alice)
    assert r.status_code == 422 and r.json()["field"] == "path.transfer_id"


# ---------------------------------------------------------------------- the catalog


def test_register_find_show_lineage_and_export(env: Env) -> None:
    put(env, "qss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    put(env, "qss", "p1", {"summary/stats.csv": b"mean,1.5\n"})
    alice = env.auth("alice", "p1")
    meta = {
        "title": "Climate run 1",
        "keywords": ["ocean", "temperature"],
        "creators": ["Ada Lovelace"],
        "license": LICENSE,
    }
    r = register(env, alice, name="climate", source="qss:run1", metadata=meta)
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert v1["ref"] == "climate@1" and v1["created"] and v1["files"] == 3
    assert r.headers["location"] == "/api/v1/datasets/climate/versions/1"
    same = register(env, alice, name="climate", source="qss:run1", metadata=meta)
    assert same.status_code == 200 and same.json()["created"] is False
    copied = register(env, alice, name="climate", source="qss:run1", tier="pss")
    assert copied.status_code == 200 and copied.json()["version"] == 1  # same content
    r = register(
        env, alice, name="summary", source="qss:summary", inputs=["climate@1"], metadata={}
    )
    assert r.status_code == 201 and r.json()["ref"] == "summary@1"

    listed = env.client.get("/api/v1/datasets", headers=alice).json()
    assert [(d["name"], d["versions"], d["latest"]) for d in listed["items"]] == [
        ("climate", 1, 1),
        ("summary", 1, 1),
    ]
    detail = env.client.get("/api/v1/datasets/climate", headers=alice).json()
    assert [v["ref"] for v in detail["versions"]] == ["climate@1"]
    version = env.client.get("/api/v1/datasets/climate/versions/latest", headers=alice).json()
    assert sorted(f["path"] for f in version["file_list"]) == sorted(RUN1)
    assert {r["tier"] for r in version["replicas"]} == {"qss", "pss"}
    assert version["pid"].startswith("urn:hexflow:") and version["metadata"]["license"] == LICENSE

    up = env.client.get("/api/v1/datasets/summary/versions/1/lineage", headers=alice).json()
    assert [(e["input"], e["output"]) for e in up["edges"]] == [("climate@1", "summary@1")]
    down = env.client.get(
        "/api/v1/datasets/climate/versions/1/lineage",
        params={"downstream": True},
        headers=alice,
    ).json()
    assert down["direction"] == "downstream" and down["edges"][0]["output"] == "summary@1"

    def found(**params: Any) -> list[str]:
        r = env.client.get("/api/v1/search", params=params, headers=alice)
        assert r.status_code == 200, r.text
        return [v["ref"] for v in r.json()["items"]]

    assert found(q="temperature") == ["climate@1"]
    assert found(q="stats") == ["summary@1"]  # file names
    assert found(meta="keywords=ocean") == ["climate@1"]
    assert found(name="sum") == ["summary@1"]
    assert found(q="lovelace", order="relevance") == ["climate@1"]
    assert found(q="nothing-like-this") == []

    r = env.client.get("/api/v1/datasets/climate/versions/1/export", headers=alice)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert "climate-1.crate.zip" in r.headers["content-disposition"]
    crate = Path(env.service.config.home) / "crate-check"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(crate)
    assert check_crate(crate) == []
    assert (crate / "fields/u.bin").read_bytes() == RUN1["fields/u.bin"]
    r = env.client.get("/api/v1/datasets/summary/versions/1/export", headers=alice)
    assert r.status_code == 422 and "license" in r.json()["message"]
    r = env.client.get(
        "/api/v1/datasets/summary/versions/1/export", params={"license": LICENSE}, headers=alice
    )
    assert r.status_code == 200

    dave = env.auth("dave", "p1", "admin")
    audit = env.client.get("/api/v1/audit", headers=dave).json()["items"]
    actions = {(e["action"], e["outcome"]) for e in audit if e["action"].startswith("data.")}
    assert actions == {
        ("data.register", "ok"),
        ("data.export", "ok"),
        ("data.export", "error"),
    }
    registered = [e for e in audit if e["action"] == "data.register"]
    assert {e["target"] for e in registered} >= {
        "climate@1 <- qss:run1",
        "summary@1 <- qss:summary",
    }


def test_bad_catalog_input_names_the_field(env: Env) -> None:
    put(env, "qss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    alice = env.auth("alice", "p1")
    r = register(env, alice, name="bad name!", source="qss:run1")
    assert r.status_code == 422 and "not valid" in r.json()["message"]
    r = register(env, alice, name="ok", source="qss:run1", metadata={"title": 3})
    assert r.status_code == 422 and r.json()["field"] == "title"
    r = register(env, alice, name="ok", source="qss:run1", tier="nosuch")
    assert r.status_code == 422 and r.json()["field"] == "tier"
    r = register(env, alice, name="ok", source="/home")
    assert r.status_code == 422 and r.json()["field"] == "source"
    r = register(env, alice, name="ok", source="qss:empty-nothing")
    assert r.status_code == 404
    r = register(env, alice, name="ok", source="qss:run1", inputs=["missing@1"])
    assert r.status_code == 404 and "missing" in r.json()["message"]
    r = env.client.post("/api/v1/datasets", json={"source": "qss:run1"}, headers=alice)
    assert r.status_code == 422 and r.json()["field"] == "body.name"
    for params, field in [
        ({}, "q"),
        ({"meta": "no-equals"}, "meta"),
        ({"q": "x", "order": "best"}, "query.order"),
        ({"q": "x", "limit": 0}, "query.limit"),
        ({"name": "x", "order": "relevance"}, "order"),
    ]:
        r = env.client.get("/api/v1/search", params=params, headers=alice)
        assert r.status_code == 422 and r.json()["field"] == field, (params, r.text)
    assert env.client.get("/api/v1/datasets/nope", headers=alice).status_code == 404
    r = env.client.get("/api/v1/datasets/x/versions/1/lineage?depth=0", headers=alice)
    assert r.status_code == 422 and r.json()["field"] == "query.depth"


# ---------------------------------------------------------------------- isolation, scopes


def _objects(env: Env) -> tuple[str, dict[str, str]]:
    """p1's transfer and dataset, made by alice."""
    put(env, "qss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    alice = env.auth("alice", "p1")
    r = transfer(env, alice, "qss:run1", "pss:run1")
    wait_transfer(env, alice, r.json()["id"])
    meta = {"license": LICENSE, "title": "secret p1 data"}
    assert register(env, alice, name="climate", source="qss:run1", metadata=meta).status_code == 201
    return r.json()["id"], alice


DATA_ROUTES = [
    ("GET", "/api/v1/storage"),
    ("POST", "/api/v1/transfers"),
    ("GET", "/api/v1/transfers"),
    ("GET", "/api/v1/transfers/{transfer_id}"),
    ("POST", "/api/v1/transfers/{transfer_id}/resume"),
    ("GET", "/api/v1/datasets"),
    ("POST", "/api/v1/datasets"),
    ("GET", "/api/v1/datasets/climate"),
    ("GET", "/api/v1/datasets/climate/versions/1"),
    ("GET", "/api/v1/datasets/climate/versions/1/lineage"),
    ("GET", "/api/v1/datasets/climate/versions/1/export"),
    ("GET", "/api/v1/search"),
]


def _call(env: Env, method: str, path: str, headers: dict[str, str], **params: Any) -> Any:
    body: dict[str, Any] | None = None
    if (method, path) == ("POST", "/api/v1/transfers"):
        body = {"source": "qss:run1", "destination": "archive:stolen"}
    elif (method, path) == ("POST", "/api/v1/datasets"):
        body = {"name": "stolen", "source": "qss:run1"}
    if path == "/api/v1/search":
        params.setdefault("q", "secret")
    return env.client.request(method, path, json=body, headers=headers, params=params)


def test_every_data_route_keeps_projects_apart(env: Env) -> None:
    transfer_id, alice = _objects(env)
    bob = env.auth("bob", "p2")
    routes = [(m, p.replace("{transfer_id}", transfer_id)) for m, p in DATA_ROUTES]
    documented = {
        (m.upper(), p)
        for p, ops in env.client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for m in ops
        if p.startswith(
            ("/api/v1/storage", "/api/v1/transfers", "/api/v1/datasets", "/api/v1/search")
        )
    }
    assert documented == {
        (m, p.replace("climate", "{name}").replace("/1", "/{version}")) for m, p in DATA_ROUTES
    }
    for method, path in routes:
        # bob names p1: not a project of his, so it does not exist for him
        r = _call(env, method, path, bob, project="p1")
        if "/transfers/" in path:  # the transfer's own project decides
            r = _call(env, method, path, bob)
        assert r.status_code == 404, (method, path, r.text)
        assert "secret" not in r.text and "run1" not in r.text, (method, path)
        # in his own project, p1's objects are not there either
        r = _call(env, method, path, bob)
        if method == "GET" and path in ("/api/v1/storage", "/api/v1/transfers", "/api/v1/datasets"):
            assert r.status_code == 200
            assert "run1" not in r.text and "climate" not in r.text, (method, path)
        elif path == "/api/v1/search":
            assert r.status_code == 200 and r.json()["items"] == []
        else:
            assert r.status_code == 404, (method, path, r.text)
            assert "secret" not in r.text
    assert not (tier_dir(env, "archive", "p2") / "stolen").exists()
    assert not (tier_dir(env, "archive", "p1") / "stolen").exists()
    # bob's refused changes were audited as denied, with nothing of p1 in them
    denied = env.service.db.log.entries(projects=None, actor="bob")
    assert {(e.action, e.outcome) for e in denied} == {
        ("data.transfer", "denied"),
        ("data.transfer.resume", "denied"),
        ("data.register", "denied"),
        ("data.export", "denied"),
    }
    # erin is in both projects: she must say which one
    erin = env.auth("erin")
    r = env.client.get("/api/v1/datasets", headers=erin)
    assert r.status_code == 422 and r.json()["field"] == "project"
    r = env.client.get("/api/v1/datasets", headers=erin, params={"project": "p1"})
    assert [d["name"] for d in r.json()["items"]] == ["climate"]


def test_scopes_and_roles_are_checked_before_the_input(env: Env) -> None:
    transfer_id, _ = _objects(env)
    routes = [(m, p.replace("{transfer_id}", transfer_id)) for m, p in DATA_ROUTES]
    invoke_only = env.auth("alice", "p1", "invoke")
    read_only = env.auth("alice", "p1", "read")
    viewer = env.auth("carol", "p1", "read,submit")
    for method, path in routes:
        r = env.client.request(method, path, headers=invoke_only)  # no body at all
        assert r.status_code == 403 and "scope" in r.json()["message"], (method, path, r.text)
        if method == "POST":
            r = env.client.request(method, path, headers=read_only)
            assert r.status_code == 403 and "submit" in r.json()["message"], (method, path)
            r = _call(env, method, path, viewer)
            assert r.status_code == 403 and "viewer" in r.json()["message"], (method, path)
        else:
            assert _call(env, method, path, read_only).status_code == 200, (method, path)
            assert _call(env, method, path, viewer).status_code == 200, (method, path)
        assert env.client.request(method, path).status_code == 401


PIPELINE = b"""name: pipeline
tasks:
  count:
    command: 'wc -c < "$HEXFLOW_INPUT_RAW/log.txt" > "$HEXFLOW_OUTPUT_COUNTED/n.txt"'
    shell: true
    inputs: [raw@1]
    outputs: [{name: counted, metadata: {title: Bytes of the log}}]
"""


def test_a_submitted_run_stages_and_registers_in_its_project(env: Env) -> None:
    """Tasks of a service run read and write datasets of the run's project, on the
    service's tiers; the API shows the new version and its lineage."""
    put(env, "pss", "p1", {f"run1/{k}": v for k, v in RUN1.items()})
    alice = env.auth("alice", "p1")
    assert register(env, alice, name="raw", source="pss:run1").status_code == 201
    run_id = env.submit(alice, body=PIPELINE).json()["id"]
    assert env.wait_run(alice, run_id)["state"] == "succeeded"
    made = env.client.get("/api/v1/datasets/counted/versions/1", headers=alice).json()
    assert made["metadata"]["title"] == "Bytes of the log"
    assert [(r["tier"], r["location"]) for r in made["replicas"]] == [
        ("qss", f"runs/{run_id}/count/counted")
    ]
    n = tier_dir(env, "qss", "p1") / f"runs/{run_id}/count/counted/n.txt"
    assert n.read_text().strip() == str(len(RUN1["log.txt"]))
    lineage = env.client.get("/api/v1/datasets/counted/versions/1/lineage", headers=alice).json()
    assert [(e["run_id"], e["input"]) for e in lineage["edges"]] == [(run_id, "raw@1")]
    bob = env.auth("bob", "p2")
    assert env.client.get("/api/v1/datasets/counted", headers=bob).status_code == 404
