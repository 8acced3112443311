"""The interface every storage backend implements (POSIX directory, S3 bucket).

Keys are '/'-separated paths inside the backend. A ``Writer`` never makes partial content
visible: bytes go to a temporary name (or an unfinished multipart upload) and ``commit``
verifies them against the digest of what was read from the source, then publishes them
atomically. ``checkpoint`` makes the bytes written so far durable and returns the state a
later process needs to go on from there (``offset`` bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

TEMP_MARK = ".hexflow-part."  # temporary names start with this; listings skip them


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float
    etag: str | None = None  # S3: the object's ETag (an MD5 for single-part uploads)
    stored_hash: str | None = None  # "algo:hex" hexflow wrote with the object, if any


class Writer(Protocol):
    offset: int  # bytes already durable at the destination (resumed), then written

    def write(self, data: bytes) -> None: ...

    def checkpoint(self) -> dict[str, Any]:
        """Make the bytes so far durable; the state to resume with, ``offset`` included."""
        ...

    def commit(self, digest: str) -> None: ...

    def suspend(self) -> None:
        """Stop, keeping what was checkpointed (a retry goes on from there)."""
        ...

    def abort(self) -> None:
        """Stop and remove every trace of the unfinished write."""
        ...


class Backend(Protocol):
    label: str  # for messages: "qss@local (/scratch/qss)"

    def stat(self, key: str) -> ObjectInfo | None:
        """The file at ``key``, or None (also for a directory/prefix)."""
        ...

    def is_dir(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every file under the directory ``prefix`` (recursive), temporaries excluded."""
        ...

    def read(self, key: str, offset: int = 0, chunk: int = 4 << 20) -> Iterator[bytes]:
        """The bytes of ``key`` from ``offset``; raises ``IntegrityError`` at the end if the
        backend's own checksum (an S3 MD5 ETag) disagrees with what was read."""
        ...

    def writer(
        self,
        key: str,
        *,
        size: int,
        token: str,
        state: dict[str, Any],
        offset: int,
        digest_hint: str | None = None,
    ) -> Writer:
        """A writer for ``key``; ``token`` names its temporary; ``state``/``offset`` are what
        a previous ``checkpoint`` returned (empty/0 for a fresh start); ``digest_hint`` is
        the content's digest when known beforehand (stored with S3 multipart objects)."""
        ...

    def sync(self) -> None:
        """Make every committed write durable (small POSIX files are synced in groups)."""
        ...

    def delete(self, key: str) -> None: ...

    def usage(self, prefix: str) -> tuple[int, int]:
        """(bytes, files) under ``prefix``."""
        ...
