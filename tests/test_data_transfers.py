"""Transfers between POSIX tiers: verified copies, retries, corruption injected (a flipped
byte, a truncated file), permanent failures that say why, quotas, and resume after a crash
(kill -9 of the process copying)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hexflow.data.backends import TEMP_MARK
from hexflow.data.copy import CopyPolicy
from hexflow.data.errors import DataInputError, DataNotFound, QuotaExceeded, TransferFailed
from hexflow.data.tiers import StorageConfig
from hexflow.data.transfers import Progress, TransferManager
from hexflow.model.transfers import ItemState, TransferState
from hexflow.store.data_db import DataDb
from hexflow.store.sql import sqlite_url
from tests.data_helpers import (
    FaultyBackend,
    faulty_factory,
    read_tree,
    storage_for,
    write_tree,
)

FAST = CopyPolicy(attempts=3, backoff=0.0, chunk=64 * 1024, checkpoint_bytes=256 * 1024)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DataDb]:
    opened = DataDb(sqlite_url(tmp_path / "hexflow.db"))
    yield opened
    opened.close()


@pytest.fixture
def storage(tmp_path: Path) -> StorageConfig:
    return storage_for(tmp_path)


def files(n: int = 5, big: int = 700_000) -> dict[str, bytes]:
    tree = {f"small/{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(n)}
    tree["big.bin"] = os.urandom(big)
    return tree


def no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(TEMP_MARK)]


def test_a_tree_copies_between_tiers_verified(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    tree = files()
    write_tree(tmp_path / "src", tree)
    tm = TransferManager(db, storage, project="proj", policy=FAST)
    seen: list[Progress] = []
    rec = tm.copy(str(tmp_path / "src"), "qss:run1", progress=seen.append)
    assert rec.state == TransferState.SUCCEEDED and rec.files_done == len(tree)
    assert read_tree(tmp_path / "qss" / "proj" / "run1") == tree
    rec2 = tm.copy("qss:run1", "pss:copy/")
    assert read_tree(tmp_path / "pss" / "proj" / "copy") == tree
    assert rec2.bytes_done == sum(len(v) for v in tree.values())
    items = tm.items(rec2.id)
    assert all(i.state == ItemState.DONE and i.hash and i.hash.startswith("blake3:") for i in items)
    assert seen and seen[-1].files_done == len(tree)
    # a single file into a directory, and to a new name
    tm.copy("qss:run1/big.bin", "archive:keep/")
    tm.copy("qss:run1/big.bin", "archive:renamed.bin")
    assert (tmp_path / "archive/proj/keep/big.bin").read_bytes() == tree["big.bin"]
    assert (tmp_path / "archive/proj/renamed.bin").read_bytes() == tree["big.bin"]
    assert [r.id for r in tm.recent()][:2] != []
    assert no_temporaries(tmp_path)


def test_a_flipped_byte_at_the_destination_is_detected_and_the_copy_redone(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    tree = files(n=2)
    write_tree(tmp_path / "src", tree)
    wrap: dict[str, FaultyBackend] = {"qss": None}  # type: ignore[dict-item]
    tm = TransferManager(db, storage, policy=FAST, backends=faulty_factory(wrap))
    tm.backend(storage.tier("qss"))
    wrap["qss"].flip_writes = 2  # the first two files written are corrupted once each
    rec = tm.copy(str(tmp_path / "src"), "qss:run")
    assert rec.state == TransferState.SUCCEEDED
    assert read_tree(tmp_path / "qss/default/run") == tree
    attempts = sorted(i.attempts for i in tm.items(rec.id))
    assert attempts.count(2) == 2  # detected by the read-back check, copied again


def test_corruption_every_time_fails_the_file_and_says_why_leaving_nothing(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    (tmp_path / "one.bin").write_bytes(b"x" * 100_000)
    wrap: dict[str, FaultyBackend] = {"qss": None}  # type: ignore[dict-item]
    tm = TransferManager(db, storage, policy=FAST, backends=faulty_factory(wrap))
    tm.backend(storage.tier("qss"))
    wrap["qss"].flip_writes = 99
    with pytest.raises(TransferFailed, match="checksum") as info:
        tm.copy(str(tmp_path / "one.bin"), "qss:one.bin")
    assert info.value.fields["failed"] == 1
    assert "corrupted while writing" in info.value.fields["reasons"][0]
    assert not (tmp_path / "qss/default/one.bin").exists()
    assert no_temporaries(tmp_path / "qss")
    assert (tmp_path / "one.bin").read_bytes() == b"x" * 100_000  # source untouched
    rec = tm.recent()[0]
    assert rec.state == TransferState.FAILED and "1 of 1 file(s) failed" in (rec.error or "")
    item = tm.items(rec.id)[0]
    assert item.state == ItemState.FAILED and item.attempts == 3


def test_a_truncated_destination_is_detected_and_redone(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    data = os.urandom(300_000)
    (tmp_path / "f.bin").write_bytes(data)
    wrap: dict[str, FaultyBackend] = {"qss": None}  # type: ignore[dict-item]
    tm = TransferManager(db, storage, policy=FAST, backends=faulty_factory(wrap))
    tm.backend(storage.tier("qss"))
    wrap["qss"].truncate_commits = 1
    rec = tm.copy(str(tmp_path / "f.bin"), "qss:f.bin")
    assert (tmp_path / "qss/default/f.bin").read_bytes() == data
    assert tm.items(rec.id)[0].attempts == 2


def test_a_source_truncated_while_copied_is_reported_not_copied(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    src = tmp_path / "growing.bin"
    src.write_bytes(os.urandom(400_000))
    wrap: dict[str, FaultyBackend] = {"local": None}  # type: ignore[dict-item]
    tm = TransferManager(db, storage, policy=FAST, backends=faulty_factory(wrap))
    tm.backend(None)

    def cut(key: str, chunk: int) -> None:
        if chunk == 1:
            os.truncate(src, 100_000)  # someone truncates the file under us

    wrap["local"].on_read_chunk = cut
    with pytest.raises(TransferFailed) as info:
        tm.copy(str(src), "qss:g.bin")
    reason = info.value.fields["reasons"][0]
    assert "100000 bytes now, 400000" in reason and "the source changed" in reason
    assert not (tmp_path / "qss/default/g.bin").exists() and no_temporaries(tmp_path / "qss")


def test_a_source_that_does_not_match_its_manifest_is_refused(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"flipped")
    tm = TransferManager(db, storage, policy=FAST)
    with pytest.raises(TransferFailed, match="differs from the recorded"):
        tm.copy(str(tmp_path / "d"), "qss:d", expected={"a.txt": "blake3:" + "0" * 64})
    assert not (tmp_path / "qss/default/d/a.txt").exists()


def test_permanent_errors_fail_at_once_and_say_why(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    (tmp_path / "x.txt").write_text("x")
    blocker = tmp_path / "qss" / "default" / "blocker"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where a directory is needed")
    tm = TransferManager(db, storage, policy=FAST)
    with pytest.raises(TransferFailed, match="cannot write") as info:
        tm.copy(str(tmp_path / "x.txt"), "qss:blocker/x.txt")
    assert tm.items(info.value.fields["transfer"])[0].attempts == 1  # not retried
    assert "hexflow transfers" in (info.value.hint or "")


def test_bad_requests_are_refused_before_anything_moves(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    tm = TransferManager(db, storage)
    with pytest.raises(DataNotFound, match="no such file"):
        tm.copy("qss:nothing", "pss:x")
    (tmp_path / "qss/default").mkdir(parents=True)
    (tmp_path / "qss/default/a").write_text("a")
    with pytest.raises(DataInputError, match="same place"):
        tm.copy("qss:a", "qss:a")
    assert tm.recent() == []


def test_quota_and_capacity_are_checked_before_copying(tmp_path: Path, db: DataDb) -> None:
    storage = storage_for(tmp_path, extra={"quotas": {"small": {"qss": 1000}}})
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    tm = TransferManager(db, storage, project="small")
    with pytest.raises(QuotaExceeded, match="quota on qss") as info:
        tm.copy(str(tmp_path / "big.bin"), "qss:big.bin")
    assert "ask for more quota" in (info.value.hint or "")
    tm.copy(str(tmp_path / "big.bin"), "pss:big.bin")  # no quota on pss
    assert not (tmp_path / "qss/small/big.bin").exists()


CRASHER = textwrap.dedent(
    """
    import sys, time
    from hexflow.data.backends import open_backend
    from hexflow.data.copy import CopyPolicy
    from hexflow.data.transfers import TransferManager
    from hexflow.store.data_db import DataDb
    from tests.data_helpers import FaultyBackend, storage_for
    from pathlib import Path

    tmp = Path(sys.argv[1])
    def slow(tier):
        b = FaultyBackend(open_backend(tier))
        if tier is None:
            b.on_read_chunk = lambda key, i: time.sleep(0.02)
        return b
    tm = TransferManager(
        DataDb(sys.argv[2]), storage_for(tmp), workers=2, backends=slow,
        policy=CopyPolicy(chunk=64 * 1024, checkpoint_bytes=256 * 1024),
        flush_interval=0.05,
    )
    rec = tm.plan(str(tmp / "src"), "qss:run")
    print(rec.id, flush=True)
    tm.run(rec.id)
    """
)


def test_a_transfer_killed_mid_copy_resumes_from_its_checkpoints(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    tree = {f"s/{i}.txt": os.urandom(2000) for i in range(30)}
    tree["big.bin"] = os.urandom(4 << 20)  # 64 chunks of 64 KiB, 20 ms each: ~1.3 s
    write_tree(tmp_path / "src", tree)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(tmp_path), db.url],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None
    transfer_id = proc.stdout.readline().strip()
    tm = TransferManager(db, storage, policy=FAST)
    deadline = time.monotonic() + 60
    big = None
    while time.monotonic() < deadline:
        items = {i.src.rsplit("/", 1)[-1]: i for i in db.transfers.items(transfer_id)}
        big = items.get("big.bin")
        if big is not None and big.offset >= 1 << 20:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the copy never reached its first checkpoints")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert big is not None
    rec = tm.get(transfer_id)
    assert (
        rec.state == TransferState.RUNNING and not (tmp_path / "qss/default/run/big.bin").exists()
    )
    partial = [p for p in (tmp_path / "qss/default/run").iterdir() if p.name.startswith(TEMP_MARK)]
    assert partial, "the checkpointed temporary is kept for the resume"
    done_before = rec.files_done

    resumed = tm.resume(transfer_id)
    assert resumed.state == TransferState.SUCCEEDED and resumed.files_done == len(tree)
    assert read_tree(tmp_path / "qss/default/run") == tree
    assert no_temporaries(tmp_path / "qss")
    big_after = [i for i in tm.items(transfer_id) if i.src.endswith("big.bin")][0]
    assert big_after.attempts == 1  # went on from the checkpoint, no corruption found
    assert done_before <= len(tree)


def test_a_transfer_driven_by_a_live_process_is_not_taken_over(
    tmp_path: Path, db: DataDb, storage: StorageConfig
) -> None:
    (tmp_path / "a").write_text("a")
    tm = TransferManager(db, storage)
    rec = tm.plan(str(tmp_path / "a"), "qss:a")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket

        assert db.transfers.claim(rec.id, None, f"{socket.gethostname()}:{sleeper.pid}")
        with pytest.raises(DataInputError, match="being run by process"):
            tm.run(rec.id)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert tm.run(rec.id).state == TransferState.SUCCEEDED  # its owner is gone now
