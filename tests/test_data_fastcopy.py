"""The kernel copy of large POSIX files (``data.fastcopy``): the bytes move through
``copy_file_range`` while source and copy are hashed behind it. Faults are injected into
the copy itself (a flipped byte, a source rewritten under the copy, a kernel that refuses
``copy_file_range``) and into the driver (an interruption after a checkpoint): each is
detected and retried, or reported, and nothing partial or mixed is ever published."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from hexflow.data import fastcopy
from hexflow.data.backends import TEMP_MARK, PosixBackend
from hexflow.data.checksum import digest_bytes
from hexflow.data.copy import CopyPolicy, ItemCallbacks, copy_item
from hexflow.data.errors import BackendError
from hexflow.model.transfers import TransferItem
from tests.helpers import wait_for

MIB = 1 << 20
# every file of these tests takes the kernel path, in ranges of 256 KiB
KERNEL = CopyPolicy(
    attempts=3,
    backoff=0.0,
    kernel_copy_min=1,
    kernel_chunk=256 * 1024,
    checkpoint_bytes=512 * 1024,
)


def _setup(tmp_path: Path, size: int = 3 * MIB) -> tuple[PosixBackend, PosixBackend, bytes]:
    (tmp_path / "src").mkdir()
    data = os.urandom(size)
    (tmp_path / "src" / "big.bin").write_bytes(data)
    return PosixBackend(str(tmp_path / "src")), PosixBackend(str(tmp_path / "dst")), data


def _item(size: int) -> TransferItem:
    return TransferItem(transfer_id="t", seq=0, src="big.bin", dst="out/big.bin", size=size)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_MARK)]


def test_a_large_file_goes_through_the_kernel_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, data = _setup(tmp_path)
    calls = []
    real = os.copy_file_range

    def counting(*args: Any) -> int:
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(fastcopy.os, "copy_file_range", counting)
    item = _item(len(data))
    digest = copy_item(item, src, dst, token="k", policy=KERNEL)
    assert digest == digest_bytes(data) and item.hash == digest
    assert (tmp_path / "dst/out/big.bin").read_bytes() == data
    assert len(calls) == 12 and item.attempts == 1  # 3 MiB in ranges of 256 KiB
    assert not _temporaries(tmp_path / "dst")


def test_the_stream_path_is_kept_for_small_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, data = _setup(tmp_path, 100_000)

    def refuse(*args: Any) -> int:
        raise AssertionError("small files are not copied by the kernel")

    monkeypatch.setattr(fastcopy.os, "copy_file_range", refuse)
    copy_item(_item(len(data)), src, dst, token="s", policy=CopyPolicy(backoff=0.0))
    assert (tmp_path / "dst/out/big.bin").read_bytes() == data


def _flipping(times: int) -> Any:
    """A copy_file_range that flips a byte of what it wrote, the first ``times`` calls."""
    real = os.copy_file_range
    left = [times]

    def flip(src: int, dst: int, count: int, off_src: int, off_dst: int) -> int:
        n = real(src, dst, count, off_src, off_dst)
        if left[0] > 0 and n:
            left[0] -= 1
            with open(f"/proc/self/fd/{dst}", "r+b") as f:  # the writer's fd is write-only
                f.seek(off_dst + n // 2)
                old = f.read(1)
                f.seek(off_dst + n // 2)
                f.write(bytes([old[0] ^ 0x01]))
        return n

    return flip


def test_a_byte_flipped_by_the_copy_is_detected_and_the_file_copied_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, data = _setup(tmp_path)
    monkeypatch.setattr(fastcopy.os, "copy_file_range", _flipping(1))
    item = _item(len(data))
    failures: list[str] = []

    class Seen(ItemCallbacks):
        def attempt_failed(self, item: TransferItem, error: BackendError) -> None:
            failures.append(error.message)

    copy_item(item, src, dst, token="f", policy=KERNEL, callbacks=Seen())
    assert item.attempts == 2 and len(failures) == 1
    assert "does not match the source" in failures[0]
    assert (tmp_path / "dst/out/big.bin").read_bytes() == data
    assert (tmp_path / "src/big.bin").read_bytes() == data  # the source is only read
    assert not _temporaries(tmp_path / "dst")


def test_corruption_every_time_fails_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, data = _setup(tmp_path)
    monkeypatch.setattr(fastcopy.os, "copy_file_range", _flipping(1000))
    item = _item(len(data))
    with pytest.raises(BackendError, match="corrupted while writing"):
        copy_item(item, src, dst, token="x", policy=KERNEL)
    assert item.attempts == 3
    assert not (tmp_path / "dst/out/big.bin").exists() and not _temporaries(tmp_path / "dst")
    assert (tmp_path / "src/big.bin").read_bytes() == data


def test_a_source_rewritten_under_the_copy_is_never_published_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, data = _setup(tmp_path)
    new = os.urandom(len(data))
    real = os.copy_file_range
    calls = [0]

    def rewrite(*args: Any) -> int:
        calls[0] += 1
        if calls[0] == 4:  # a writer replaces the content (same size) mid-copy
            with open(tmp_path / "src/big.bin", "r+b") as f:
                f.write(new)
        return real(*args)

    monkeypatch.setattr(fastcopy.os, "copy_file_range", rewrite)
    item = _item(len(data))
    copy_item(item, src, dst, token="r", policy=KERNEL)
    assert item.attempts == 2  # the first try saw the change; the second copied `new`
    assert (tmp_path / "dst/out/big.bin").read_bytes() == new
    assert item.hash == digest_bytes(new)


def test_without_copy_file_range_the_bytes_go_through_user_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, data = _setup(tmp_path)

    def unsupported(*args: Any) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(fastcopy.os, "copy_file_range", unsupported)
    item = _item(len(data))
    assert copy_item(item, src, dst, token="u", policy=KERNEL) == digest_bytes(data)
    assert (tmp_path / "dst/out/big.bin").read_bytes() == data


def test_a_known_digest_that_differs_refuses_the_source(tmp_path: Path) -> None:
    src, dst, data = _setup(tmp_path)
    item = _item(len(data))
    item.expected_hash = digest_bytes(b"something else")
    with pytest.raises(BackendError, match="differs from the recorded"):
        copy_item(item, src, dst, token="e", policy=KERNEL)
    assert not (tmp_path / "dst/out/big.bin").exists() and not _temporaries(tmp_path / "dst")


class Interrupted(Exception):
    pass


def test_an_interrupted_kernel_copy_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    src, dst, data = _setup(tmp_path)
    item = _item(len(data))
    synced: list[int] = []

    class StopAfterACheckpoint(ItemCallbacks):
        def checkpointed(self, item: TransferItem, offset: int, state: dict[str, Any]) -> None:
            super().checkpointed(item, offset, state)  # on the checkpoint thread
            synced.append(offset)

        moved = 0

        def bytes_moved(self, item: TransferItem, delta: int) -> None:
            self.moved += delta
            if self.moved >= 1 * MIB:  # let the checkpoint thread finish its sync, then
                wait_for(lambda: synced, 30, "the first checkpoint")
                raise Interrupted  # the copying thread stops (a crash, Ctrl-C)

    with pytest.raises(Interrupted):
        copy_item(item, src, dst, token="i", policy=KERNEL, callbacks=StopAfterACheckpoint())
    assert synced[0] == 512 * 1024  # the first checkpoint, recorded once synced
    # interrupted: what was copied is synced and recorded as the resume point
    assert 512 * 1024 <= item.offset < len(data) and item.resume["tmp"]
    partial = _temporaries(tmp_path / "dst")
    assert len(partial) == 1 and partial[0].stat().st_size == item.offset
    assert not (tmp_path / "dst/out/big.bin").exists()

    resumed_at = item.offset
    moved: list[int] = []

    class Count(ItemCallbacks):
        def bytes_moved(self, item: TransferItem, delta: int) -> None:
            moved.append(delta)

    copy_item(item, src, dst, token="i", policy=KERNEL, callbacks=Count())
    assert (tmp_path / "dst/out/big.bin").read_bytes() == data
    assert moved[0] == resumed_at and sum(moved) == len(data)  # the prefix is not copied again
    assert not _temporaries(tmp_path / "dst")


def test_a_corrupted_checkpoint_is_caught_on_resume(tmp_path: Path) -> None:
    """The bytes already at the destination are hashed from the copy too, so damage done
    to the temporary while the copy was stopped is found."""
    src, dst, data = _setup(tmp_path)
    item = _item(len(data))

    class Stop(ItemCallbacks):
        def bytes_moved(self, item: TransferItem, delta: int) -> None:
            raise Interrupted

    with pytest.raises(Interrupted):
        copy_item(item, src, dst, token="c", policy=KERNEL, callbacks=Stop())
    (tmp,) = _temporaries(tmp_path / "dst")
    with open(tmp, "r+b") as f:
        f.seek(10)
        f.write(b"\x00\x01\x02")
    copy_item(item, src, dst, token="c", policy=KERNEL)
    assert item.attempts == 3  # interrupted, resumed and found damaged, copied from zero
    assert (tmp_path / "dst/out/big.bin").read_bytes() == data
