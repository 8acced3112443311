"""The project's resources inside a function: its storage tiers and its SQLite database.

The server writes the local tiers it has (``write_tiers``) to
``$HEXFLOW_HOME/functions/resources.json``; a worker runs each call in
``$HEXFLOW_HOME/functions/<project>``, so the context finds both from there with no
server object. ``ProjectTier`` confines every path to the project's namespace of a tier
(``<root>/<project>/...`` or ``s3://bucket/prefix/<project>/...``): an absolute path or
one with ``..`` is refused. ``project_database`` opens ``<project dir>/project.db``, one
SQLite file per project shared by its functions (WAL, waits for a writer).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from hexflow.data.backends import Backend, open_backend
from hexflow.data.checksum import digest_bytes
from hexflow.data.errors import DataInputError, DataNotFound
from hexflow.data.tiers import StorageConfig, TierSpec
from hexflow.model.ids import new_id

RESOURCES_FILE = "resources.json"  # in $HEXFLOW_HOME/functions
DATABASE_FILE = "project.db"  # in $HEXFLOW_HOME/functions/<project>


def write_tiers(functions_dir: Path, storage: StorageConfig) -> None:
    """Record the local tiers where the workers find them (atomically)."""
    functions_dir.mkdir(parents=True, exist_ok=True)
    doc = {"tiers": {t.name: dataclasses.asdict(t) for t in storage.local_tiers()}}
    tmp = functions_dir / f".{RESOURCES_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, functions_dir / RESOURCES_FILE)


def read_tiers(functions_dir: Path) -> dict[str, TierSpec]:
    try:
        doc = json.loads((functions_dir / RESOURCES_FILE).read_text())
    except FileNotFoundError:
        return {}
    return {name: TierSpec(**spec) for name, spec in doc.get("tiers", {}).items()}


def clean_path(path: str) -> str:
    """``path`` relative to a project's namespace, normalized; DataInputError for one that
    is absolute, climbs out (``..``) or is empty."""
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise DataInputError(f"bad path {path!r}", hint="a relative path, e.g. 'run1/out.h5'")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise DataInputError(
            f"the path {path!r} leaves the project's directory of the tier",
            hint="paths are relative to the project's namespace, without '..'",
        )
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts:
        raise DataInputError(f"bad path {path!r}", hint="name a file, e.g. 'run1/out.h5'")
    return "/".join(parts)


class ProjectTier:
    """Read and write files of one project in one storage tier (POSIX or S3)."""

    def __init__(self, spec: TierSpec, project: str, backend: Backend | None = None) -> None:
        self.spec = spec
        self.project = project
        self.backend = backend or open_backend(spec)

    def __repr__(self) -> str:
        return f"<ProjectTier {self.spec.name} of {self.project}>"

    @property
    def name(self) -> str:
        return self.spec.name

    def key(self, path: str) -> str:
        return f"{self.project}/{clean_path(path)}"

    def local_path(self, path: str) -> Path:
        """The file's path on this machine (POSIX tiers only)."""
        if self.spec.kind != "posix":
            raise DataInputError(
                f"tier {self.spec.name} is {self.spec.kind}, not a directory",
                hint="use read_bytes/write_bytes",
            )
        return Path(self.spec.root) / self.key(path)

    def exists(self, path: str) -> bool:
        return self.backend.stat(self.key(path)) is not None

    def read_bytes(self, path: str) -> bytes:
        key = self.key(path)
        if self.backend.stat(key) is None:
            raise DataNotFound(f"no file {path!r} in tier {self.spec.name} of {self.project}")
        return b"".join(self.backend.read(key))

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def write_bytes(self, path: str, data: bytes) -> str:
        """Write ``data`` (published whole, checksummed); returns the location TIER:PATH."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DataInputError(f"write bytes, not {type(data).__name__}")
        data = bytes(data)
        key = self.key(path)
        writer = self.backend.writer(key, size=len(data), token=new_id(12), state={}, offset=0)
        try:
            writer.write(data)
            writer.commit(digest_bytes(data))
        except BaseException:
            writer.abort()
            raise
        self.backend.sync()
        return f"{self.spec.name}:{clean_path(path)}"

    def write_text(self, path: str, text: str, encoding: str = "utf-8") -> str:
        return self.write_bytes(path, text.encode(encoding))

    def list(self, prefix: str = "") -> Iterator[str]:
        """The paths of the project's files under ``prefix`` (all of them by default)."""
        base = self.project + ("/" + clean_path(prefix) if prefix else "")
        for info in self.backend.list(base):
            yield info.key[len(self.project) + 1 :]

    def delete(self, path: str) -> None:
        self.backend.delete(self.key(path))


def project_database(project_dir: Path) -> sqlite3.Connection:
    """The project's SQLite database (made on first use), for functions to keep results."""
    project_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(project_dir / DATABASE_FILE, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def upload_location(ref: Any) -> tuple[str, str]:
    """(tier, path in the project's namespace) of an upload reference: ``{"$ref":
    "upload:TIER/ID"}`` or the string ``upload:TIER/ID``."""
    text = ref.get("$ref") if isinstance(ref, dict) else ref
    if not isinstance(text, str) or not text.startswith("upload:"):
        raise DataInputError(
            f"not an upload reference: {ref!r}",
            hint='pass what POST /api/v1/functions/{name}/uploads returned as "ref"',
        )
    tier, _, upload_id = text[len("upload:") :].partition("/")
    if not tier or not upload_id or "/" in upload_id or upload_id in (".", ".."):
        raise DataInputError(f"bad upload reference {text!r}", hint="upload:TIER/ID")
    return tier, f"{UPLOADS_DIR}/{upload_id}"


UPLOADS_DIR = ".uploads"  # where pre-signed uploads land in a project's namespace
