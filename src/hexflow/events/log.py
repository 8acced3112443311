"""EventLog: the durable, numbered log of events on the service's database.

Producers append (``append``: its own transaction; or ``store.events_sql.append`` inside a
transaction of their own, as the engine and the function gateway do); consumers read
after a sequence number and record how far they got (``commit``). Reading never changes
the log: any consumer can replay it from any offset — unless the server keeps events for a
while only (``EventsConfig.retention``): ``prune`` then deletes what is older and every
consumer has handled, and ``pruned_upto`` says how far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

from hexflow.model.events import Event, NewEvent
from hexflow.store import events_retention, events_sql
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

    def prune(self, retention: float, *, batch: int = 5000, batches: int = 20) -> int:
        """Delete the events older than ``retention`` seconds that every consumer has
        handled, in transactions of ``batch`` events (at most ``batches`` of them a call);
        returns how many went."""
        gone = 0
        for _ in range(batches):
            now = self._now()
            with self.db.write() as conn:
                upto = events_retention.consumers_upto(conn)
                if upto is None:
                    upto = events_sql.head(conn)
                done = events_retention.prune(
                    conn, before=now - retention, upto=upto, now=now, limit=batch
                )
            gone += done
            if done < batch:
                break
        return gone

    def pruned_upto(self) -> int:
        """The newest ``seq`` retention deleted (0: none)."""
        with self.db.read() as conn:
            return events_retention.pruned_upto(conn)
