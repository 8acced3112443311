"""A server's SQLite WAL is checkpointed on a thread of its own (store/wal.py): commits
never pay for a checkpoint up to the safety net, the log is copied back while the server
writes, and emptied when it stops; nothing committed is lost."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from hexflow.store.service_db import ServiceDb
from hexflow.store.wal import SAFETY_NET_PAGES, WalCheckpointer


def test_the_checkpointer_copies_the_log_back_and_empties_it_on_stop(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    checkpointer = WalCheckpointer(path, interval=0.05)
    checkpointer.start()
    try:
        for _ in range(300):
            writer.execute("INSERT INTO t (body) VALUES (?)", ("x" * 2000,))
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints == 0:
            assert time.monotonic() < deadline, "no checkpoint ran"
            time.sleep(0.02)
    finally:
        writer.close()
        checkpointer.stop()
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # TRUNCATE at the end
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (300,)
    reader.close()


def test_a_service_database_leaves_checkpoints_to_its_thread(tmp_path: Path) -> None:
    db = ServiceDb(f"sqlite:///{tmp_path / 'svc.db'}")
    try:
        with db.read() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == SAFETY_NET_PAGES
        assert db.checkpointer is not None
        db.start_checkpoints()
        db.start_checkpoints()  # once
    finally:
        db.close()
    assert db.checkpointer._thread is None  # stopped with the database


def test_a_missing_directory_does_not_stop_the_server(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(os.path.join(tmp_path, "no", "such", "db"), interval=0.01)
    checkpointer.start()
    time.sleep(0.1)
    checkpointer.stop()  # the thread logged and ended; stop returns
    assert checkpointer.checkpoints == 0
