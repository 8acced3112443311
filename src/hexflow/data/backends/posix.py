"""A POSIX directory as a storage backend.

Writes go to ``.hexflow-part.<token>.<name>`` next to the destination; ``commit`` fsyncs
it, reads it back (or takes the digest ``data.fastcopy`` read back while copying) and
checks its digest and size, then renames it over the destination (atomic on one
filesystem). A checkpoint fsyncs the temporary and records its name.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hexflow.data.backends.base import TEMP_MARK, ObjectInfo
from hexflow.data.checksum import algo_of, digest_of, new_hasher
from hexflow.data.errors import BackendError, IntegrityError

# Errors worth trying again: the device or the network filesystem hiccuped.
_TRANSIENT = {errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EINTR}


def os_error(exc: OSError, what: str) -> BackendError:
    transient = exc.errno in _TRANSIENT
    hint = None
    if exc.errno == errno.ENOSPC:
        hint = "the destination is full: free space or pick another tier"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "check the permissions of the directory"
    return BackendError(
        f"{what}: {exc.strerror or exc}", hint=hint, transient=transient, errno=exc.errno
    )


_SMALL = 1 << 20


class PosixBackend:
    """Files of at least 1 MiB are fsynced before their rename; smaller ones are made
    durable together by ``sync`` (one ``syncfs``), which the transfer manager calls before
    it records them done: group commit for data, as the store does for state."""

    def __init__(self, root: str, label: str | None = None, fsync: bool = True) -> None:
        self.root = Path(root)
        self.label = label or str(root)
        self.fsync = fsync

    def sync(self) -> None:
        if not self.fsync:
            return
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError:
            return
        try:
            if _syncfs is not None:
                _syncfs(fd)
            else:  # pragma: no cover - not Linux
                os.sync()
        finally:
            os.close(fd)

    def path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.stat(self.path(key))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise os_error(exc, f"cannot stat {self.path(key)}") from None
        if not _is_file(st.st_mode):
            return None
        return ObjectInfo(key=key, size=st.st_size, mtime=st.st_mtime)

    def is_dir(self, key: str) -> bool:
        return self.path(key).is_dir()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.path(prefix)
        stack = [base]
        while stack:
            current = stack.pop()
            try:
                entries = sorted(os.scandir(current), key=lambda e: e.name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise os_error(exc, f"cannot list {current}") from None
            for entry in entries:
                if entry.name.startswith(TEMP_MARK):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    rel = os.path.relpath(entry.path, self.root)
                    yield ObjectInfo(
                        key=rel.replace(os.sep, "/"), size=st.st_size, mtime=st.st_mtime
                    )

    def read(self, key: str, offset: int = 0, chunk: int = 4 << 20) -> Iterator[bytes]:
        path = self.path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                if offset:
                    f.seek(offset)
                while True:
                    data = f.read(chunk)
                    if not data:
                        return
                    yield data
        except FileNotFoundError:
            raise BackendError(
                f"{path}: the source file disappeared", transient=False, missing=True
            ) from None
        except OSError as exc:
            raise os_error(exc, f"cannot read {path}") from None

    def writer(
        self,
        key: str,
        *,
        size: int,
        token: str,
        state: dict[str, Any],
        offset: int,
        digest_hint: str | None = None,
    ) -> PosixWriter:
        return PosixWriter(self, key, size=size, token=token, state=state, offset=offset)

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_error(exc, f"cannot delete {path}") from None
        # prune directories left empty, up to the root
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def usage(self, prefix: str) -> tuple[int, int]:
        total = files = 0
        for info in self.list(prefix):
            total += info.size
            files += 1
        return total, files


def _load_syncfs() -> Any:
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None


_syncfs = _load_syncfs()


def _is_file(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


class PosixWriter:
    def __init__(
        self,
        backend: PosixBackend,
        key: str,
        *,
        size: int,
        token: str,
        state: dict[str, Any],
        offset: int,
    ) -> None:
        self._backend = backend
        self.final = backend.path(key)
        self.size = size
        name = self.final.name
        self.tmp = self.final.with_name(f"{TEMP_MARK}{token}.{name}"[:255])
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            if offset and state.get("tmp") == str(self.tmp) and self.tmp.exists():
                self._f = open(self.tmp, "r+b", buffering=0)  # noqa: SIM115 - held open
                self._f.truncate(offset)  # bytes after the last checkpoint are not trusted
                self._f.seek(offset)
                self.offset = offset
            else:
                self._f = open(self.tmp, "wb", buffering=0)  # noqa: SIM115 - held open
                self.offset = 0
        except OSError as exc:
            raise os_error(exc, f"cannot write {self.final}") from None

    def write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = self._f.write(view)
                view = view[n:]
        except OSError as exc:
            raise os_error(exc, f"cannot write {self.tmp}") from None
        self.offset += len(data)

    def fileno(self) -> int:
        """The temporary's descriptor, for a kernel copy into it (``data.fastcopy``)."""
        return self._f.fileno()

    def advance(self, n: int) -> None:
        """``n`` more bytes were written through ``fileno()``, past ``offset``."""
        self.offset += n

    def checkpoint(self) -> dict[str, Any]:
        try:
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise os_error(exc, f"cannot sync {self.tmp}") from None
        return {"offset": self.offset, "tmp": str(self.tmp)}

    def commit(self, digest: str, *, copy_digest: str | None = None) -> None:
        """Sync, check and publish. ``copy_digest``: the temporary was already read back
        and hashed range by range as it was written (``data.fastcopy``), so it is not read
        again here; it must still equal the source's ``digest``."""
        try:
            if self._backend.fsync and self.size >= _SMALL:
                os.fsync(self._f.fileno())
            self._f.close()
            got_size = os.stat(self.tmp).st_size
            if got_size != self.size:
                raise IntegrityError(
                    f"{self.final}: wrote {got_size} bytes, expected {self.size} (truncated)"
                )
            written = copy_digest if copy_digest is not None else self._read_back(digest)
            if written != digest:
                raise IntegrityError(
                    f"{self.final}: the copy's checksum {written[:23]}… does not match the "
                    f"source's {digest[:23]}… (corrupted while writing)",
                    digest=digest,
                    written=written,
                )
            os.replace(self.tmp, self.final)
        except OSError as exc:
            self.abort()
            raise os_error(exc, f"cannot finish {self.final}") from None
        except IntegrityError:
            self.abort()
            raise

    def _read_back(self, digest: str) -> str:
        algo = algo_of(digest)
        hasher = new_hasher(algo, size_hint=self.size)
        if self.size >= 64 << 20 and hasattr(hasher, "update_mmap"):
            hasher.update_mmap(str(self.tmp))
        else:
            with open(self.tmp, "rb", buffering=0) as f:
                while data := f.read(4 << 20):
                    hasher.update(data)
        return digest_of(hasher, algo)

    def suspend(self) -> None:
        """Stop writing but keep the temporary: a retry goes on from the last checkpoint."""
        try:
            self._f.close()
        except OSError:
            pass

    def abort(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass
        try:
            self.tmp.unlink()
        except OSError:
            pass
