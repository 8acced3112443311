"""Manifests (pure): the digest that addresses a version, its persistent identifier, and
the text full-text search indexes for it.

The digest is taken over ``model.datasets.manifest_bytes`` (paths, sizes and file digests,
sorted), so identical content has one digest whatever order the files were found in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hexflow.data.checksum import ALGO, digest_bytes
from hexflow.model.datasets import FileEntry, manifest_bytes

PID_PREFIX = "urn:hexflow:"
_MAX_PATHS = 500  # file paths beyond this many are not indexed for search


def manifest_digest(entries: Iterable[FileEntry], algo: str = ALGO) -> str:
    return digest_bytes(manifest_bytes(entries), algo)


def version_pid(project: str, name: str, digest: str) -> str:
    """Persistent identifier of a version: unique per dataset and content, never reused."""
    return (
        PID_PREFIX + digest_bytes(f"{project}/{name}\n{digest}".encode(), ALGO).split(":")[1][:32]
    )


def _words(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out.append(str(value))
    elif isinstance(value, Mapping):
        for v in value.values():
            _words(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _words(v, out)


def search_text(name: str, metadata: Mapping[str, Any], entries: Iterable[FileEntry]) -> str:
    """Name (also split at '-', '_', '.'), every string in the metadata, and file paths."""
    parts = [name, re.sub(r"[-_.]+", " ", name)]
    _words(dict(metadata), parts)
    for i, entry in enumerate(entries):
        if i >= _MAX_PATHS:
            break
        parts.append(re.sub(r"[/_.-]+", " ", entry.path))
    return "\n".join(p for p in parts if p)
