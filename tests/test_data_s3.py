"""Transfers with an S3 tier, against a real S3-compatible server (moto server, started by
scripts/test.sh; HEXFLOW_TEST_S3_URL): POSIX↔S3 and S3↔S3 copies, single and multipart,
a byte flipped in transit (both ways), and the server killed mid-copy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hexflow.data.backends import TEMP_MARK
from hexflow.data.backends.s3 import S3Backend
from hexflow.data.copy import CopyPolicy
from hexflow.data.errors import TransferFailed
from hexflow.data.transfers import TransferManager
from hexflow.model.transfers import ItemState, TransferState
from hexflow.store.data_db import DataDb
from hexflow.store.sql import sqlite_url
from tests.data_helpers import (
    S3_SKIP,
    S3_URL,
    read_tree,
    s3_env,
    storage_for,
    write_tree,
)

pytestmark = pytest.mark.skipif(not S3_URL, reason=S3_SKIP)

FAST = CopyPolicy(attempts=3, backoff=0.05, chunk=1 << 20, checkpoint_bytes=5 << 20)
PART = 5 << 20  # the smallest S3 part


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DataDb]:
    opened = DataDb(sqlite_url(tmp_path / "hexflow.db"))
    yield opened
    opened.close()


def manager(tmp_path: Path, db: DataDb, url: str | None = None, **kw: Any) -> TransferManager:
    storage = storage_for(tmp_path, s3_url=url or S3_URL)
    tm = TransferManager(db, storage, policy=kw.pop("policy", FAST), **kw)
    s3 = tm.backend(storage.tier("offplatform"))
    assert isinstance(s3, S3Backend)
    s3.part_size = PART
    return tm


def s3_of(tm: TransferManager) -> S3Backend:
    backend = tm.backend(tm.storage.tier("offplatform"))
    assert isinstance(backend, S3Backend)
    return backend


def test_posix_to_s3_to_s3_to_posix_small_and_multipart(tmp_path: Path, db: DataDb) -> None:
    tree = {"a.txt": b"hello\n", "d/e.bin": os.urandom(300_000), "big.bin": os.urandom(12 << 20)}
    write_tree(tmp_path / "src", tree)
    tm = manager(tmp_path, db)
    up = tm.copy(str(tmp_path / "src"), "offplatform:run1")
    assert up.state == TransferState.SUCCEEDED
    s3 = s3_of(tm)
    keys = sorted(o.key for o in s3.list("default/run1"))
    assert keys == ["default/run1/a.txt", "default/run1/big.bin", "default/run1/d/e.bin"]
    digest = {i.src.rsplit("src/", 1)[-1]: i.hash for i in tm.items(up.id)}
    small = s3.stat("default/run1/a.txt")
    assert small is not None and small.stored_hash == digest["a.txt"]  # digest kept with it
    big = s3.stat("default/run1/big.bin")
    assert big is not None and big.etag and big.etag.endswith("-3")  # 3 parts
    tm.copy("offplatform:run1", "offplatform:copy/")  # S3 → S3
    down = tm.copy("offplatform:copy", str(tmp_path / "back"))
    assert down.state == TransferState.SUCCEEDED
    assert read_tree(tmp_path / "back") == tree
    assert [i.hash for i in tm.items(down.id)] == [i.hash for i in tm.items(up.id)]


class _FlipInTransit:
    """Wraps the boto3 client: the next N request bodies have a byte flipped after their
    MD5 was computed, as a bad network link would."""

    def __init__(self, client: Any, times: int) -> None:
        self._client, self.times = client, times

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in ("put_object", "upload_part"):
            return attr

        def call(**kw: Any) -> Any:
            if self.times > 0:
                self.times -= 1
                body = kw["Body"]
                kw["Body"] = bytes([body[0] ^ 0x01]) + body[1:]
            return attr(**kw)

        return call


def test_a_byte_flipped_on_the_way_to_s3_is_detected_and_resent(tmp_path: Path, db: DataDb) -> None:
    tree = {"one.txt": b"payload" * 100, "big.bin": os.urandom(11 << 20)}
    write_tree(tmp_path / "src", tree)
    tm = manager(tmp_path, db)
    s3 = s3_of(tm)
    s3.ensure_bucket()
    s3.client = _FlipInTransit(s3.client, times=2)
    rec = tm.copy(str(tmp_path / "src"), "offplatform:x")
    assert rec.state == TransferState.SUCCEEDED
    assert sum(i.attempts for i in tm.items(rec.id)) == 4  # each file once more
    s3.client = s3.client._client
    tm.copy("offplatform:x", str(tmp_path / "back"))
    assert read_tree(tmp_path / "back") == tree


def test_a_byte_flipped_on_the_way_from_s3_is_detected(tmp_path: Path, db: DataDb) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(200_000))
    tm = manager(tmp_path, db)
    tm.copy(str(tmp_path / "f.bin"), "offplatform:f.bin")
    s3 = s3_of(tm)
    real_get = s3.client.get_object
    flips = {"left": 1}

    class Body:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def read(self, n: int) -> bytes:
            data: bytes = self.inner.read(n)
            if data and flips["left"]:
                flips["left"] -= 1
                data = bytes([data[0] ^ 0x80]) + data[1:]
            return data

        def close(self) -> None:
            self.inner.close()

    class Client:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_get.__self__, name)

        def get_object(self, **kw: Any) -> Any:
            out = real_get(**kw)
            out["Body"] = Body(out["Body"])
            return out

    s3.client = Client()
    rec = tm.copy("offplatform:f.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()
    assert tm.items(rec.id)[0].attempts == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A private moto server this test may kill."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        if not exe.exists():
            pytest.skip(
                "moto_server is not installed next to this Python (pip install moto[server])"
            )
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def server() -> Iterator[_Server]:
    s3_env()
    srv = _Server()
    srv.start()
    yield srv
    srv.kill()


def test_server_killed_mid_upload_fails_cleanly_then_resumes(
    tmp_path: Path, db: DataDb, server: _Server
) -> None:
    data = os.urandom(16 << 20)  # 4 parts
    (tmp_path / "big.bin").write_bytes(data)
    tm = manager(tmp_path, db, url=server.url)
    s3 = s3_of(tm)
    s3.ensure_bucket()
    real_upload = s3.client.upload_part
    parts = {"n": 0}

    def upload_then_die(**kw: Any) -> Any:
        out = real_upload(**kw)
        parts["n"] += 1
        if parts["n"] == 2:
            server.kill()  # the S3 server dies after two parts
        return out

    s3.client.upload_part = upload_then_die
    with pytest.raises(TransferFailed) as info:
        tm.copy(str(tmp_path / "big.bin"), "offplatform:big.bin")
    reason = info.value.fields["reasons"][0]
    assert "Connect" in reason or "connect" in reason, reason
    assert (tmp_path / "big.bin").read_bytes() == data  # source untouched
    rec = tm.recent()[0]
    item = tm.items(rec.id)[0]
    assert rec.state == TransferState.FAILED and item.state == ItemState.FAILED
    assert item.resume.get("upload_id") and item.offset == 2 * PART  # parts 1-2 recorded

    server.start()  # a fresh server: it forgot the bucket and the upload
    s3.client.upload_part = real_upload
    s3._bucket_checked = False
    resumed = tm.resume(rec.id)
    assert resumed.state == TransferState.SUCCEEDED
    assert s3.stat("default/big.bin") is not None
    tm.copy("offplatform:big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data


def test_server_killed_mid_download_leaves_nothing_partial(
    tmp_path: Path, db: DataDb, server: _Server
) -> None:
    data = os.urandom(8 << 20)
    (tmp_path / "f.bin").write_bytes(data)
    tm = manager(
        tmp_path, db, url=server.url, policy=CopyPolicy(attempts=2, backoff=0.05, chunk=1 << 20)
    )
    tm.copy(str(tmp_path / "f.bin"), "offplatform:f.bin")
    assert s3_of(tm).stat("default/f.bin") is not None
    s3 = s3_of(tm)
    real_get = s3.client.get_object

    def get_then_die(**kw: Any) -> Any:
        out = real_get(**kw)
        server.kill()
        return out

    s3.client.get_object = get_then_die
    dest = tmp_path / "down"
    with pytest.raises(TransferFailed):
        tm.copy("offplatform:f.bin", str(dest) + "/")
    assert not (dest / "f.bin").exists()
    leftovers = [p.name for p in dest.iterdir()] if dest.exists() else []
    assert all(name.startswith(TEMP_MARK) for name in leftovers)
