"""Copying one file between backends, checksummed end to end, with retries.

The source is hashed as it is read; the destination writer re-checks what it holds against
that digest before publishing it (POSIX: read back; S3: per-part MD5). A large file from
one POSIX directory to another is copied by the kernel instead, with the source and the
copy both hashed behind it (``data.fastcopy``). The source's size,
its modification time and any digest known for it (a catalog manifest, ``hexflow-hash``
metadata) are checked as well. A transient failure (network, corruption) is retried, from
the last checkpoint when the bytes there are still trusted, from zero after a corruption;
a permanent one (no such file, permission denied) fails at once. The source is only read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hexflow.data.backends.base import Backend, Writer
from hexflow.data.backends.posix import PosixBackend, PosixWriter, os_error
from hexflow.data.checksum import ALGO, algo_of, digest_of, new_hasher
from hexflow.data.errors import BackendError, IntegrityError
from hexflow.data.fastcopy import kernel_copy
from hexflow.model.transfers import TransferItem


@dataclass(frozen=True)
class CopyPolicy:
    attempts: int = 3  # tries per file, the first included
    backoff: float = 0.5  # seconds before the first retry, doubled after each
    checkpoint_bytes: int = 64 << 20  # make written bytes durable (resume point) this often
    chunk: int = 4 << 20
    # POSIX to POSIX files at least this large go through the kernel (``data.fastcopy``)
    kernel_copy_min: int = 8 << 20
    kernel_chunk: int = 8 << 20  # bytes per kernel copy call; hashing lags one behind
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


class ItemCallbacks:
    """What a copy reports while it runs (the transfer manager overrides these)."""

    def bytes_moved(self, item: TransferItem, delta: int) -> None:
        """``delta`` bytes more (negative: a restart from zero gave some back)."""

    def checkpointed(self, item: TransferItem, offset: int, state: dict[str, Any]) -> None:
        item.offset, item.resume = offset, state

    def attempt_failed(self, item: TransferItem, error: BackendError) -> None:
        """A try failed and the file will be tried again."""


def copy_item(
    item: TransferItem,
    src: Backend,
    dst: Backend,
    *,
    token: str,
    policy: CopyPolicy,
    callbacks: ItemCallbacks | None = None,
) -> str:
    """Copy ``item.src`` to ``item.dst``; returns the digest. Raises the last
    ``BackendError`` once the file cannot be copied (permanent error or tries used up)."""
    cb = callbacks or ItemCallbacks()
    while True:
        item.attempts += 1
        try:
            return _copy_once(item, src, dst, token, policy, cb)
        except BackendError as exc:
            if not exc.transient or item.attempts >= policy.attempts:
                raise
            cb.attempt_failed(item, exc)
            policy.sleep(policy.backoff * 2 ** (item.attempts - 1))


def _copy_once(
    item: TransferItem,
    src: Backend,
    dst: Backend,
    token: str,
    policy: CopyPolicy,
    cb: ItemCallbacks,
) -> str:
    info = src.stat(item.src)
    if info is None:
        raise BackendError(
            f"{src.label}: {item.src}: no such file (removed since the transfer was planned?)",
            transient=False,
            missing=True,
        )
    if info.size != item.size:
        raise BackendError(
            f"{src.label}: {item.src} is {info.size} bytes now, {item.size} when the transfer "
            "was planned: the source changed",
            hint="start a new transfer to copy the current content",
            transient=False,
        )
    known = item.expected_hash or info.stored_hash
    if known is not None and algo_of(known) != ALGO:
        known = None  # recorded with another algorithm: cannot compare with ours
    writer: Writer = dst.writer(
        item.dst,
        size=item.size,
        token=token,
        state=item.resume,
        offset=item.offset if item.resume else 0,
        digest_hint=known,
    )
    moved = _Moved(item, cb, policy, writer)
    try:
        if (
            isinstance(src, PosixBackend)
            and isinstance(writer, PosixWriter)
            and item.size >= policy.kernel_copy_min
        ):
            digest, copied = _copy_kernel(item, src, writer, moved)
        else:
            digest, copied = _copy_stream(item, src, writer, policy, moved), None
        if known is not None and digest != known:
            raise IntegrityError(
                f"{src.label}: {item.src}: content checksum {digest[:23]}… differs from the "
                f"recorded {known[:23]}… (the source is corrupted or was changed)",
                digest=digest,
                expected=known,
            )
        if info.etag is None:  # a file: check it did not change while it was read
            after = src.stat(item.src)
            if after is None or after.mtime != info.mtime or after.size != info.size:
                raise IntegrityError(f"{src.label}: {item.src} changed while it was copied")
        if copied is not None:
            assert isinstance(writer, PosixWriter)
            writer.commit(digest, copy_digest=copied)
        else:
            writer.commit(digest)
    except IntegrityError:
        writer.abort()  # nothing written can be trusted: the next try starts from zero
        item.offset, item.resume = 0, {}
        cb.bytes_moved(item, -moved.counted)
        raise
    except BackendError as exc:
        if exc.transient:
            _keep_checkpoint(item, writer, cb)
        else:
            writer.abort()
            item.offset, item.resume = 0, {}
        cb.bytes_moved(item, -moved.counted)
        raise
    except BaseException:
        _keep_checkpoint(item, writer, cb)  # interrupted: resumable from the checkpoint
        raise
    item.offset, item.resume, item.hash = item.size, {}, digest
    return digest


class _Moved:
    """Bytes reported as moved for one try (given back if it fails), and the checkpoints."""

    def __init__(self, item: TransferItem, cb: ItemCallbacks, policy: CopyPolicy, writer: Writer):
        self.item, self.cb, self.policy, self.writer = item, cb, policy, writer
        self.counted = 0
        self.since = 0

    def add(self, n: int, *, offset: int | None = None) -> None:
        """``n`` bytes more; at ``offset`` (of ``item.size``) a checkpoint may be due."""
        self.counted += n
        self.cb.bytes_moved(self.item, n)
        if offset is None:
            return
        self.since += n
        if self.since >= self.policy.checkpoint_bytes and offset < self.item.size:
            state = self.writer.checkpoint()
            self.cb.checkpointed(self.item, int(state.pop("offset", 0)), state)
            self.since = 0


def _copy_stream(
    item: TransferItem, src: Backend, writer: Writer, policy: CopyPolicy, moved: _Moved
) -> str:
    """Read, hash and write chunk by chunk (any pair of backends); the source's digest."""
    start = writer.offset
    hasher = new_hasher(ALGO, size_hint=item.size)
    if start:
        # Going on from a checkpoint: the digest covers the whole source, so the bytes
        # before the resume point are hashed again from the source (read, not copied).
        for chunk in _prefix(src.read(item.src, 0, policy.chunk), start):
            hasher.update(chunk)
        moved.add(start)
    read = start
    for chunk in src.read(item.src, start, policy.chunk):
        hasher.update(chunk)
        writer.write(chunk)
        read += len(chunk)
        moved.add(len(chunk), offset=read)
    if read != item.size:
        raise IntegrityError(
            f"{src.label}: {item.src}: read {read} bytes, expected {item.size} "
            "(truncated or changed while copying)"
        )
    return digest_of(hasher, ALGO)


def _copy_kernel(
    item: TransferItem, src: PosixBackend, writer: PosixWriter, moved: _Moved
) -> tuple[str, str]:
    """POSIX to POSIX: the kernel copies, a helper thread hashes source and copy behind it
    (``data.fastcopy``). Returns (source digest, copy digest)."""
    start = writer.offset
    path = src.path(item.src)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise BackendError(
            f"{path}: the source file disappeared", transient=False, missing=True
        ) from None
    except OSError as exc:
        raise os_error(exc, f"cannot read {path}") from None
    if start:
        moved.add(start)
    checkpoints = _BackgroundCheckpoints(item, writer, moved)

    def copied(offset: int, n: int) -> None:
        writer.advance(n)
        moved.add(n)
        checkpoints.due(offset)

    try:
        return kernel_copy(
            fd,
            writer.fileno(),
            str(writer.tmp),
            start=start,
            size=item.size,
            algo=ALGO,
            on_copied=copied,
            chunk=moved.policy.kernel_chunk,
        )
    except IntegrityError as exc:
        raise IntegrityError(f"{src.label}: {item.src}: {exc.message}") from None
    except OSError as exc:
        raise os_error(exc, f"cannot copy {path} to {writer.tmp}") from None
    finally:
        checkpoints.join()
        os.close(fd)


class _BackgroundCheckpoints:
    """Checkpoints of a kernel copy: the temporary is synced on a thread of its own while
    the copy goes on, and the offset reached before the sync started is recorded once the
    sync has returned. One sync at a time; a checkpoint due while one runs is skipped."""

    def __init__(self, item: TransferItem, writer: PosixWriter, moved: _Moved) -> None:
        self.item, self.writer, self.moved = item, writer, moved
        self.last = writer.offset
        self.thread: threading.Thread | None = None

    def due(self, offset: int) -> None:
        if offset - self.last < self.moved.policy.checkpoint_bytes or offset >= self.item.size:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        self.last = offset
        self.thread = threading.Thread(
            target=self._sync, args=(offset,), name="hexflow-checkpoint", daemon=True
        )
        self.thread.start()

    def _sync(self, offset: int) -> None:
        try:
            os.fdatasync(self.writer.fileno())
        except OSError:
            return  # the previous checkpoint stays; the final fsync reports the error
        self.moved.cb.checkpointed(self.item, offset, {"tmp": str(self.writer.tmp)})

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _keep_checkpoint(item: TransferItem, writer: Writer, cb: ItemCallbacks) -> None:
    try:
        state = writer.checkpoint()
        cb.checkpointed(item, int(state.pop("offset", 0)), state)
    except BackendError:
        pass  # keep the previous checkpoint
    writer.suspend()


def _prefix(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    left = limit
    try:
        for chunk in chunks:
            if len(chunk) >= left:
                yield chunk[:left]
                return
            left -= len(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if left:
        raise IntegrityError(f"the source is shorter than the {limit} bytes already copied")
