"""Helpers of the data-layer tests: storage settings on temporary directories, the real S3
server (HEXFLOW_TEST_S3_URL, started by scripts/test.sh), PostgreSQL schemas, and backends
that inject faults (a flipped byte, a truncated file) between the copy and the storage."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hexflow.data.backends import Backend, open_backend
from hexflow.data.tiers import StorageConfig, TierSpec, parse_storage

S3_ENV = "HEXFLOW_TEST_S3_URL"
S3_URL = os.environ.get(S3_ENV)
S3_SKIP = (
    f"no S3 server: set {S3_ENV} to an S3 endpoint (scripts/test.sh starts moto on "
    "127.0.0.1:59010 and sets it; CI runs these tests)"
)
PG_ENV = "HEXFLOW_TEST_POSTGRES_URL"
PG_URL = os.environ.get(PG_ENV)
PG_SKIP = f"PostgreSQL not configured: set {PG_ENV} (scripts/test.sh does as root)"

needs_s3 = pytest.mark.skipif(not S3_URL, reason=S3_SKIP)


def s3_env() -> None:
    """Credentials for the test server (any work with moto)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def fresh_bucket() -> str:
    return f"hx-{uuid.uuid4().hex[:12]}"


def storage_for(
    tmp_path: Path,
    *,
    s3_url: str | None = None,
    bucket: str | None = None,
    extra: dict[str, Any] | None = None,
) -> StorageConfig:
    """qss, pss, archive as directories; offplatform an S3 bucket when a server is given."""
    tiers: dict[str, Any] = {
        "qss": {"path": str(tmp_path / "qss")},
        "pss": {"path": str(tmp_path / "pss")},
        "archive": {"path": str(tmp_path / "archive")},
    }
    if s3_url:
        s3_env()
        tiers["offplatform"] = {
            "url": f"s3://{bucket or fresh_bucket()}/tier",
            "endpoint_url": s3_url,
            "create_bucket": True,
        }
    doc: dict[str, Any] = {"site": "local", "tiers": tiers, **(extra or {})}
    return parse_storage(doc, home=str(tmp_path / ".hexflow"))


def pg_schema_url(url: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    schema = f"hx_data_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = (
        make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        yield scoped
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class FaultyBackend:
    """Wraps a backend; ``faults`` is a list of callables consulted per event, each used once.

    ``flip_write``: the next write of a file flips one byte of what reaches the storage
    (the copy hashed the true bytes). ``truncate_commit``: the temporary loses its last byte
    just before it is published. ``on_write(n)``: called with the count of writes so far.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.label = inner.label
        self.flip_writes = 0
        self.truncate_commits = 0
        self.on_write: Callable[[int], None] | None = None
        self.writes = 0
        self.on_read_chunk: Callable[[str, int], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, key: str, offset: int = 0, chunk: int = 4 << 20) -> Iterator[bytes]:
        for i, data in enumerate(self.inner.read(key, offset, chunk)):
            if self.on_read_chunk is not None:
                self.on_read_chunk(key, i)
            yield data

    def writer(self, key: str, **kw: Any) -> Any:
        return _FaultyWriter(self, self.inner.writer(key, **kw))


class _FaultyWriter:
    def __init__(self, owner: FaultyBackend, inner: Any) -> None:
        self.owner, self.inner = owner, inner
        self.flip = False
        if owner.flip_writes > 0:
            owner.flip_writes -= 1
            self.flip = True

    @property
    def offset(self) -> int:
        return int(self.inner.offset)

    def write(self, data: bytes) -> None:
        self.owner.writes += 1
        if self.owner.on_write is not None:
            self.owner.on_write(self.owner.writes)
        if self.flip and data:
            self.flip = False
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.inner.write(data)

    def checkpoint(self) -> dict[str, Any]:
        return dict(self.inner.checkpoint())

    def commit(self, digest: str) -> None:
        if self.owner.truncate_commits > 0 and hasattr(self.inner, "tmp"):
            self.owner.truncate_commits -= 1
            self.inner._f.flush()
            os.truncate(self.inner.tmp, max(0, self.inner.offset - 1))
        self.inner.commit(digest)

    def suspend(self) -> None:
        self.inner.suspend()

    def abort(self) -> None:
        self.inner.abort()


def faulty_factory(
    wrap: dict[str, FaultyBackend],
) -> Callable[[TierSpec | None], Any]:
    """A backend factory whose tiers named in ``wrap`` get a FaultyBackend (filled lazily)."""

    def make(tier: TierSpec | None) -> Any:
        inner = open_backend(tier)
        name = "local" if tier is None else tier.name
        if name in wrap:
            wrap[name] = FaultyBackend(inner)
            return wrap[name]
        return inner

    return make


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
