"""Content checksums: BLAKE3 (the ``blake3`` package) when installed, else SHA-256.

A digest is written ``algo:hex``, so manifests say which algorithm made them and a digest
of one algorithm is never compared with another's by mistake.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

_blake3: Any
try:  # pragma: no branch - which one depends on the install
    import blake3 as _blake3

    ALGO = "blake3"
except ImportError:  # pragma: no cover - blake3 is a dependency; this is the fallback
    _blake3 = None
    ALGO = "sha256"

_BIG = 64 * 1024 * 1024


class Hasher(Protocol):
    def update(self, data: Any, /) -> Any: ...

    def hexdigest(self) -> str: ...


def new_hasher(algo: str = ALGO, *, size_hint: int = 0) -> Hasher:
    """A streaming hasher; a large ``size_hint`` lets BLAKE3 use several threads."""
    if algo == "blake3":
        if _blake3 is None:
            raise ValueError("blake3 digests need the 'blake3' package (pip install blake3)")
        if size_hint >= _BIG:
            h: Hasher = _blake3.blake3(max_threads=_blake3.blake3.AUTO)
            return h
        plain: Hasher = _blake3.blake3()
        return plain
    if algo == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algo!r} (blake3 or sha256)")


def algo_of(digest: str) -> str:
    algo, sep, _ = digest.partition(":")
    if not sep:
        raise ValueError(f"digest {digest!r} has no 'algo:' prefix")
    return algo


def digest_of(hasher: Hasher, algo: str = ALGO) -> str:
    return f"{algo}:{hasher.hexdigest()}"


def digest_bytes(data: bytes, algo: str = ALGO) -> str:
    h = new_hasher(algo, size_hint=len(data))
    h.update(data)
    return digest_of(h, algo)
