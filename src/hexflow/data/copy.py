"""Copying one file between backends, checksummed end to end, with retries.

The source is hashed as it is read; the destination writer re-checks what it holds against
that digest before publishing it (POSIX: read back; S3: per-part MD5). The source's size,
its modification time and any digest known for it (a catalog manifest, ``hexflow-hash``
metadata) are checked as well. A transient failure (network, corruption) is retried, from
the last checkpoint when the bytes there are still trusted, from zero after a corruption;
a permanent one (no such file, permission denied) fails at once. The source is only read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hexflow.data.backends.base import Backend, Writer
from hexflow.data.checksum import ALGO, algo_of, digest_of, new_hasher
from hexflow.data.errors import BackendError, IntegrityError
from hexflow.model.transfers import TransferItem


@dataclass(frozen=True)
class CopyPolicy:
    attempts: int = 3  # tries per file, the first included
    backoff: float = 0.5  # seconds before the first retry, doubled after each
    checkpoint_bytes: int = 64 << 20  # make written bytes durable (resume point) this often
    chunk: int = 4 << 20
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
    start = writer.offset
    hasher = new_hasher(ALGO, size_hint=item.size)
    counted = 0
    try:
        if start:
            # Going on from a checkpoint: the digest covers the whole source, so the bytes
            # before the resume point are hashed again from the source (read, not copied).
            for chunk in _prefix(src.read(item.src, 0, policy.chunk), start):
                hasher.update(chunk)
            cb.bytes_moved(item, start)
            counted += start
        since = 0
        read = start
        for chunk in src.read(item.src, start, policy.chunk):
            hasher.update(chunk)
            writer.write(chunk)
            read += len(chunk)
            counted += len(chunk)
            since += len(chunk)
            cb.bytes_moved(item, len(chunk))
            if since >= policy.checkpoint_bytes and read < item.size:
                state = writer.checkpoint()
                cb.checkpointed(item, int(state.pop("offset", 0)), state)
                since = 0
        if read != item.size:
            raise IntegrityError(
                f"{src.label}: {item.src}: read {read} bytes, expected {item.size} "
                "(truncated or changed while copying)"
            )
        digest = digest_of(hasher, ALGO)
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
        writer.commit(digest)
    except IntegrityError:
        writer.abort()  # nothing written can be trusted: the next try starts from zero
        item.offset, item.resume = 0, {}
        cb.bytes_moved(item, -counted)
        raise
    except BackendError as exc:
        if exc.transient:
            _keep_checkpoint(item, writer, cb)
        else:
            writer.abort()
            item.offset, item.resume = 0, {}
        cb.bytes_moved(item, -counted)
        raise
    except BaseException:
        _keep_checkpoint(item, writer, cb)  # interrupted: resumable from the checkpoint
        raise
    item.offset, item.resume, item.hash = item.size, {}, digest
    return digest


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
