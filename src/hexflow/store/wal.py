"""WalCheckpointer: a server's SQLite WAL checkpoints, on a thread of their own.

In WAL mode SQLite copies the log back into the database (a checkpoint, with an fsync of
both files) in the thread of whichever commit made the log pass ``wal_autocheckpoint``
pages: under a steady write load one commit in a few hundred paid 3-18 ms for it, in the
thread that answers requests. A server therefore raises that threshold on its connections
(a safety net only) and checkpoints here instead, every ``interval`` seconds, in PASSIVE
mode: it never waits for a reader or blocks a writer, and a checkpoint that could not copy
everything (a long read) is finished by the next ones. Durability is unchanged: a commit is
in the log before it is answered, a checkpoint only moves it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("hexflow.store.wal")

# The pages a server's connection lets the log grow to before it checkpoints itself
# (SQLite's default: 1000, 4 MB): only reached if the checkpointer falls behind.
SAFETY_NET_PAGES = 16_000


class WalCheckpointer:
    def __init__(self, path: str, interval: float = 0.2) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hexflow-wal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop; a last checkpoint empties the log if nothing reads it."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("no WAL checkpoints for %s: %s", self.path, exc)
            return
        try:
            while not self._stop.wait(self.interval):
                self._checkpoint(conn, "PASSIVE")
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> None:
        try:
            busy, pages, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # the next one tries again
            log.debug("WAL checkpoint of %s failed: %s", self.path, exc)
            return
        if pages > 0:
            self.checkpoints += 1
        if pages > SAFETY_NET_PAGES // 2 and copied < pages:
            log.info(
                "WAL of %s: %d of %d pages copied (long reads hold it)", self.path, copied, pages
            )


__all__ = ["SAFETY_NET_PAGES", "WalCheckpointer"]
