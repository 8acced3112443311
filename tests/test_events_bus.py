"""The bus's consumers read the log only when there may be something for them: woken by
the kinds of event they read, or by their poll; a caught-up consumer waits (it once read
the log in a loop under steady load); a full batch is read on at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from pathlib import Path

from hexflow.events.bus import EventBus
from hexflow.events.faults import Faults
from hexflow.events.log import EventLog
from hexflow.model.events import Event, NewEvent
from hexflow.store.service_db import ServiceDb


class CountingLog(EventLog):
    def __init__(self, db: ServiceDb) -> None:
        super().__init__(db)
        self.reads = 0

    def read_kinds(
        self, after: int, kinds: Collection[str] | None, *, limit: int = 500
    ) -> tuple[list[Event], int]:
        self.reads += 1
        return super().read_kinds(after, kinds, limit=limit)


def _ev(kind: str, i: int) -> NewEvent:
    return NewEvent(kind, "p1", f"s{i}", time.time(), {"i": i})


def test_consumers_read_when_woken_for_their_kinds_or_polled(tmp_path: Path) -> None:
    db = ServiceDb(f"sqlite:///{tmp_path / 'bus.db'}")
    log = CountingLog(db)
    bus = EventBus(log, faults=Faults(None, tmp_path), poll_interval=30.0, batch=10)
    got: list[int] = []

    async def handle(events: list[Event]) -> None:
        got.extend(e.seq for e in events)

    bus.register("ticks", handle, kinds=lambda: {"test.tick"}, fault_point=False)

    async def scenario() -> None:
        await bus.start()
        try:
            await asyncio.sleep(0.1)
            start = log.reads
            await asyncio.sleep(0.3)
            assert log.reads == start  # caught up, nothing new: no reads (poll is 30 s)
            # events of another kind wake nobody who does not read them
            log.append([_ev("test.other", 0)])
            bus.wake(kinds={"test.other"})
            await asyncio.sleep(0.2)
            assert log.reads == start and got == []
            # its kind wakes it: one read handles them, then it waits again
            logged = log.append([_ev("test.tick", i) for i in range(3)])
            bus.wake(kinds={"test.tick"})
            await asyncio.sleep(0.3)
            assert got == [e.seq for e in logged]
            after_wake = log.reads
            assert after_wake - start <= 2
            await asyncio.sleep(0.3)
            assert log.reads == after_wake  # no read loop once caught up
            # a backlog over the batch size is read on at once, batch after batch
            many = log.append([_ev("test.tick", i) for i in range(25)])
            bus.wake(kinds={"test.tick"})
            await asyncio.sleep(0.5)
            assert got[-25:] == [e.seq for e in many]
            # events fired elsewhere from memory wake no consumer (kinds=())
            more = log.append([_ev("test.tick", 99)])
            bus.wake(kinds=())
            await asyncio.sleep(0.2)
            assert got[-1] != more[0].seq
        finally:
            await bus.stop()

    try:
        asyncio.run(scenario())
    finally:
        db.close()
