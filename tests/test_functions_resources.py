"""The project's resources inside a function (its storage tiers, confined to its namespace,
and its SQLite database) and pre-signed uploads for data over the payload limit (POSIX
tiers through this server, S3 tiers through a presigned URL of the real S3 server)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from hexflow.events.functions.uploads import Grant
from tests import service_env
from tests.data_helpers import S3_URL, needs_s3, storage_for
from tests.events_env import ALL, events_env, invoke, register
from tests.service_env import Env

db_url = service_env.db_url  # fixture


def _call(env: Env, headers: dict[str, str], name: str, args: dict) -> dict:
    r = invoke(env, headers, name, args)
    assert r.status_code == 200, r.text
    out: dict = r.json()
    return out


def test_a_function_keeps_results_in_the_projects_tier_and_database(
    tmp_path: Path, db_url: str
) -> None:
    storage = storage_for(tmp_path)
    with events_env(tmp_path, db_url, storage=storage) as env:
        alice, bob = env.auth("alice", "p1", ALL), env.auth("bob", "p2", ALL)
        register(env, alice, "keep", "tests.events_fns:keep")
        register(env, bob, "keep", "tests.events_fns:keep")
        first = _call(env, alice, "keep", {"name": "a", "value": 1.5})
        assert first["state"] == "succeeded", first
        assert first["result"] == {
            "where": "qss:results/a.txt",
            "files": ["results/a.txt"],
            "back": "1.5",
            "total": 1.5,
        }
        out = _call(env, alice, "keep", {"name": "b", "value": 2.0})["result"]
        assert out["files"] == ["results/a.txt", "results/b.txt"] and out["total"] == 3.5
        # on disk: the project's namespace of the tier, and one database per project
        assert (tmp_path / "qss" / "p1" / "results" / "b.txt").read_text() == "2.0"
        home = env.service.config.home
        assert (home / "functions" / "p1" / "project.db").is_file()
        other = _call(env, bob, "keep", {"name": "a", "value": 10.0})["result"]
        assert other["files"] == ["results/a.txt"] and other["total"] == 10.0
        assert (tmp_path / "qss" / "p2" / "results" / "a.txt").read_text() == "10.0"


@pytest.mark.parametrize(
    ("tier", "path", "error"),
    [
        ("qss", "../p2/results/a.txt", "leaves the project"),
        ("qss", "/etc/hostname", "leaves the project"),
        ("qss", "a/../../b", "leaves the project"),
        ("qss", "", "bad path"),
        ("nope", "a.txt", "no storage tier 'nope'"),
    ],
)
def test_paths_stay_inside_the_projects_namespace(
    tmp_path: Path, db_url: str, tier: str, path: str, error: str
) -> None:
    with events_env(tmp_path, db_url, storage=storage_for(tmp_path)) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "write_to", "tests.events_fns:write_to")
        out = _call(env, alice, "write_to", {"tier": tier, "path": path})
        assert out["state"] == "failed" and error in out["error"], out
        assert not (tmp_path / "qss" / "p2").exists()


def _upload(env: Env, headers: dict[str, str], size: int, **body: object) -> httpx.Response:
    r: httpx.Response = env.client.post(
        "/api/v1/functions/digest/uploads", json={"size": size, **body}, headers=headers
    )
    return r


def test_data_over_the_limit_goes_by_a_presigned_upload(tmp_path: Path, db_url: str) -> None:
    storage = storage_for(tmp_path)
    with events_env(
        tmp_path, db_url, storage=storage, max_payload_bytes=1000, upload_max_bytes=1 << 20
    ) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "digest", "tests.events_fns:digest")
        data = os.urandom(300_000)
        assert invoke(env, alice, "digest", {"data": data.hex()}).status_code == 413
        r = _upload(env, alice, len(data))
        assert r.status_code == 201, r.text
        target = r.json()
        assert target["method"] == "PUT" and target["tier"] == "qss"
        assert target["ref"] == {"$ref": f"upload:qss/{target['id']}"}
        assert target["expires_at"] > time.time()
        # the PUT needs no bearer token: the URL's token is the credential
        put = env.client.put(target["url"], content=data, headers=target["headers"])
        assert put.status_code == 201, put.text
        assert put.json() == {"id": target["id"], "ref": target["ref"], "size": len(data)}
        out = _call(env, alice, "digest", {"data": target["ref"]})
        assert out["state"] == "succeeded", out
        assert out["result"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert out["result"]["head"] == data[:4].hex()
        # one upload per URL
        again = env.client.put(target["url"], content=data, headers=target["headers"])
        assert again.status_code == 409, again.text
        # a reference to something not uploaded, or not a reference, fails the call
        missing = _call(env, alice, "digest", {"data": {"$ref": "upload:qss/nothing"}})
        assert missing["state"] == "failed" and "no file" in missing["error"]
        bad = _call(env, alice, "digest", {"data": "not a ref"})
        assert bad["state"] == "failed" and "not an upload reference" in bad["error"]


def test_bad_uploads_are_refused(tmp_path: Path, db_url: str) -> None:
    with events_env(tmp_path, db_url, storage=storage_for(tmp_path), upload_max_bytes=1000) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "digest", "tests.events_fns:digest")
        for body, field in [
            ({"size": 0}, "size"),
            ({"size": -5}, "size"),
            ({"size": 1001}, "size"),
            ({"size": "12"}, "size"),
            ({"size": True}, "size"),
            ({"size": 10, "tier": "nope"}, "tier"),
            ({"tier": "qss"}, "size"),
        ]:
            r = env.client.post("/api/v1/functions/digest/uploads", json=body, headers=alice)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["field"].endswith(field), (body, r.json())
        # only for a function the caller may invoke
        assert _upload(env, alice, 10, tier=None).status_code == 201
        r = env.client.post("/api/v1/functions/nope/uploads", json={"size": 1}, headers=alice)
        assert r.status_code == 404
        bob = env.auth("bob", "p2", ALL)
        assert _upload(env, bob, 10).status_code == 404
        reader = env.auth("carol", "p1", "read")
        assert _upload(env, reader, 10).status_code == 403
        assert (
            env.client.post("/api/v1/functions/digest/uploads", json={"size": 1}).status_code == 401
        )
        # the PUT: the exact size, a genuine and fresh token
        target = _upload(env, alice, 10).json()
        url = target["url"]
        assert env.client.put(url, content=b"x" * 9).status_code == 422
        assert env.client.put(url, content=b"x" * 11).status_code == 422
        token = url.rsplit("/", 1)[1]
        payload, sig = token.split(".")
        for forged in (f"{payload}.{sig[:-2]}AA", f"{payload[:-2]}AA.{sig}", "x", "a.b"):
            r = env.client.put(f"/api/v1/uploads/{forged}", content=b"x" * 10)
            assert r.status_code == 401, (forged, r.text)
        uploads = env.service.events.uploads
        stale = uploads.token(Grant("p1", "qss", "old", 10, time.time() - 1))
        assert env.client.put(f"/api/v1/uploads/{stale}", content=b"x" * 10).status_code == 410
        other = uploads.token(Grant("p1", "nope", "x1", 10, time.time() + 60))
        assert env.client.put(f"/api/v1/uploads/{other}", content=b"x" * 10).status_code == 422
        assert env.client.put(url, content=b"x" * 10).status_code == 201


@needs_s3
def test_s3_tiers_take_presigned_uploads_and_function_files(tmp_path: Path, db_url: str) -> None:
    storage = storage_for(tmp_path, s3_url=S3_URL)
    with events_env(tmp_path, db_url, storage=storage, max_payload_bytes=1000) as env:
        alice = env.auth("alice", "p1", ALL)
        register(env, alice, "digest", "tests.events_fns:digest")
        register(env, alice, "keep", "tests.events_fns:keep")
        data = os.urandom(50_000)
        target = _upload(env, alice, len(data), tier="offplatform").json()
        assert target["url"].startswith(str(S3_URL)) and "Signature" in target["url"]
        put = httpx.put(target["url"], content=data, headers=target["headers"])
        assert put.status_code == 200, put.text
        out = _call(env, alice, "digest", {"data": target["ref"]})
        assert out["state"] == "succeeded", out
        assert out["result"]["sha256"] == hashlib.sha256(data).hexdigest()
        kept = _call(env, alice, "keep", {"name": "s", "value": 4.0, "tier": "offplatform"})
        assert kept["result"]["files"] == ["results/s.txt"] and kept["result"]["back"] == "4.0"
