"""The kernel copy of one large file from a POSIX directory into a POSIX writer's temporary,
checked end to end: ``copy_file_range`` moves the bytes without passing them through
Python, while a helper thread hashes each copied range twice — from the source and from the
copy — behind it.

Invariant: the returned source digest covers every byte of the source as it was read, the
returned copy digest every byte of the temporary as it was written, both in order; the
caller publishes the copy only when they are equal (and equal to any digest known for the
source). A range is hashed only after it is copied, so a source that changes under the copy
gives different digests, never a silent mix. The copy is read back from the page cache as
soon as it is written, as a read-back after the final ``fsync`` would read it (the kernel
keeps those pages); a failed write-back is reported by that ``fsync``.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable

from hexflow.data.checksum import Hasher, digest_of, new_hasher
from hexflow.data.errors import IntegrityError

KERNEL_CHUNK = 8 << 20  # bytes per copy_file_range call: the hashing lags one chunk behind
_HASH_BUFFER = 1 << 20  # read buffer of the hashing thread (stays in the CPU cache)
# copy_file_range refused for this pair of files (old kernel, other filesystems): copy the
# rest through a user-space buffer, still hashed the same way
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP}


def kernel_copy(
    src_fd: int,
    dst_fd: int,
    dst_path: str,
    *,
    start: int,
    size: int,
    algo: str,
    on_copied: Callable[[int, int], None],
    chunk: int = KERNEL_CHUNK,
) -> tuple[str, str]:
    """Copy ``[start, size)`` of ``src_fd`` to the same offsets of ``dst_fd`` (the file
    ``dst_path``, read back through its own descriptor); the bytes before ``start`` are
    already there (a resumed copy) and are hashed as well.

    ``on_copied(offset, n)`` is called after each range is copied (progress, checkpoints).
    Returns ``(source digest, copy digest)`` over ``[0, size)``. Raises ``IntegrityError``
    when the source ends early, ``OSError`` when reading or writing fails.
    """
    src_hash = new_hasher(algo)
    dst_hash = new_hasher(algo)
    ranges: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
    failure: list[BaseException] = []
    verify_fd = os.open(dst_path, os.O_RDONLY)

    def verify() -> None:
        buf = bytearray(_HASH_BUFFER)
        try:
            while (job := ranges.get()) is not None:
                if failure:
                    continue  # drain until told to stop
                offset, n = job
                _hash_range(src_hash, src_fd, offset, n, buf)
                _hash_range(dst_hash, verify_fd, offset, n, buf)
        except BaseException as exc:  # noqa: BLE001 - handed to the copying thread
            failure.append(exc)

    helper = threading.Thread(target=verify, name="hexflow-verify", daemon=True)
    helper.start()
    try:
        if start:
            ranges.put((0, start))
        offset, kernel = start, True
        while offset < size and not failure:
            want = min(chunk, size - offset)
            if kernel:
                try:
                    n = os.copy_file_range(src_fd, dst_fd, want, offset, offset)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY:
                        raise
                    kernel = False
                    continue
            else:
                n = _user_copy(src_fd, dst_fd, offset, want)
            if n == 0:
                raise IntegrityError(
                    f"the source ended at byte {offset} of {size} (truncated while copied)"
                )
            ranges.put((offset, n))
            offset += n
            on_copied(offset, n)
    finally:
        ranges.put(None)
        helper.join()
        os.close(verify_fd)
    if failure:
        raise failure[0]
    return digest_of(src_hash, algo), digest_of(dst_hash, algo)


def _hash_range(hasher: Hasher, fd: int, offset: int, n: int, buf: bytearray) -> None:
    view = memoryview(buf)
    end = offset + n
    while offset < end:
        got = os.preadv(fd, [view[: min(len(buf), end - offset)]], offset)
        if got <= 0:
            raise IntegrityError(f"{end - offset} bytes missing at byte {offset} on read-back")
        hasher.update(view[:got])
        offset += got


def _user_copy(src_fd: int, dst_fd: int, offset: int, n: int) -> int:
    data = os.pread(src_fd, n, offset)
    view = memoryview(data)
    done = 0
    while done < len(data):
        done += os.pwrite(dst_fd, view[done:], offset + done)
    return len(data)
