"""EventLog: the durable, numbered log of events on the service's database.

Producers append (``append``: its own transaction; or ``store.events_sql.append`` inside a
transaction of their own, as the engine and the function gateway do); consumers read
after a sequence number and record how far they got (``commit``). Reading never changes
the log: any consumer can replay it from any offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

from hexflow.model.events import Event, NewEvent
from hexflow.store import events_sql
from hexflow.store.service_db import ServiceDb


class EventLog:
    def __init__(self, db: ServiceDb, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._now = clock

    def append(self, new: Sequence[NewEvent]) -> list[Event]:
        """Log ``new`` in one transaction; keyed events logged before are skipped."""
        with self.db.write() as conn:
            return events_sql.append(conn, new)

    def read(
        self, after: int, *, projects: Collection[str] | None = None, limit: int = 500
    ) -> list[Event]:
        with self.db.read() as conn:
            return events_sql.read(conn, after, projects=projects, limit=limit)

    def read_kinds(
        self, after: int, kinds: Collection[str] | None, *, limit: int = 500
    ) -> tuple[list[Event], int]:
        """The events after ``after`` of ``kinds`` (patterns), and the ``seq`` read up to."""
        with self.db.read() as conn:
            return events_sql.read_kinds(conn, after, kinds, limit=limit)

    def head(self) -> int:
        with self.db.read() as conn:
            return events_sql.head(conn)

    def offset(self, consumer: str) -> int | None:
        """How far ``consumer`` has handled the log (None: it never committed)."""
        with self.db.read() as conn:
            return events_sql.offset(conn, consumer)

    def commit(self, consumer: str, seq: int) -> None:
        with self.db.write() as conn:
            events_sql.commit_offset(conn, consumer, seq, self._now())
