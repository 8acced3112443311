"""Redis Streams delivery for several server processes: the SQL log is relayed once into
one stream (explicit ids, so relays never copy twice); each consumer group shares events
among the servers; entries a dead server read but never acknowledged go to another.
Runs against the real Redis that scripts/test.sh starts (HEXFLOW_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hexflow.events.bus import EventBus
from hexflow.events.faults import Faults
from hexflow.events.log import EventLog
from hexflow.events.redis import RedisStreams
from hexflow.model.events import Event, NewEvent
from hexflow.store.service_db import ServiceDb

REDIS_URL = os.environ.get("HEXFLOW_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not REDIS_URL,
    reason="no Redis: set HEXFLOW_TEST_REDIS_URL (scripts/test.sh starts one when run as root)",
)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    db = ServiceDb(f"sqlite:///{tmp_path / 'events.db'}")
    yield EventLog(db)
    db.close()


def _bus(log: EventLog, tmp_path: Path, stream: str, owner: str, **kw: float) -> EventBus:
    bus = EventBus(log, faults=Faults(None, tmp_path), poll_interval=0.02)
    assert REDIS_URL
    bus.use_redis(RedisStreams(REDIS_URL, log, owner=owner, stream=stream, block=0.1, **kw))
    return bus


def _events(n: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent("webhook.received", "p1", "t", float(i), {"i": i}) for i in range(start, n)]


async def _until(cond: object, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_servers_share_a_consumer_group_and_each_event_is_handled_once(
    log: EventLog, tmp_path: Path
) -> None:
    stream = f"hexflow:test:{uuid.uuid4().hex}"
    handled: dict[str, list[int]] = {"a": [], "b": []}

    def handler(name: str):  # type: ignore[no-untyped-def]
        async def handle(events: list[Event]) -> None:
            handled[name].extend(e.seq for e in events)
            await asyncio.sleep(0.02)  # busy a moment: the other server takes the next ones

        return handle

    async def main() -> None:
        buses = []
        for name in ("a", "b"):
            bus = _bus(log, tmp_path, stream, owner=f"server-{name}")
            bus.register("work", handler(name), from_start=True)
            await bus.start()
            buses.append(bus)
        for i in range(30):
            await asyncio.to_thread(log.append, _events(10 * (i + 1), 10 * i))
            for bus in buses:
                bus.wake()
            await asyncio.sleep(0.01)
        await _until(lambda: len(handled["a"]) + len(handled["b"]) >= 300)
        await asyncio.sleep(0.3)
        for bus in buses:
            await bus.stop()

    asyncio.run(main())
    every = handled["a"] + handled["b"]
    assert sorted(every) == list(range(1, 301))  # each event once, none lost
    assert handled["a"] and handled["b"]  # and both servers did some of the work


def test_entries_a_dead_server_never_acknowledged_go_to_another(
    log: EventLog, tmp_path: Path
) -> None:
    stream = f"hexflow:test:{uuid.uuid4().hex}"
    got: list[int] = []
    stuck = asyncio.Event

    async def main() -> None:
        hang = stuck()

        async def dies(events: list[Event]) -> None:
            await hang.wait()  # reads a batch, then never acknowledges it

        async def works(events: list[Event]) -> None:
            got.extend(e.seq for e in events)

        dead = _bus(log, tmp_path, stream, owner="server-dead", claim_after=0.3)
        dead.register("work", dies, from_start=True)
        await dead.start()
        await asyncio.to_thread(log.append, _events(20))
        dead.wake()
        redis = dead._redis
        assert redis is not None
        await _until(lambda: _pending(redis, stream) >= 1)
        await dead.stop()  # "killed": what it read stays pending, never acknowledged
        alive = _bus(log, tmp_path, stream, owner="server-alive", claim_after=0.3)
        alive.register("work", works, from_start=True)
        await alive.start()
        await _until(lambda: len(got) >= 20)
        await alive.stop()

    def _pending(redis: RedisStreams, stream: str) -> int:
        import redis as sync_redis

        assert REDIS_URL
        client = sync_redis.Redis.from_url(REDIS_URL)
        try:
            return int(client.xpending(stream, "work")["pending"])
        except Exception:  # noqa: BLE001 - no group yet
            return 0
        finally:
            client.close()

    asyncio.run(main())
    assert sorted(got) == list(range(1, 21))


def test_two_relays_copy_each_event_once(log: EventLog, tmp_path: Path) -> None:
    import redis as sync_redis

    stream = f"hexflow:test:{uuid.uuid4().hex}"

    async def main() -> None:
        a = RedisStreams(REDIS_URL or "", log, owner="a", stream=stream)
        b = RedisStreams(REDIS_URL or "", log, owner="b", stream=stream)
        events = await asyncio.to_thread(log.append, _events(50))
        await a.publish(events[:30])
        await b.publish(events)  # overlaps what a copied
        await a.publish(events[10:])
        await a.close()
        await b.close()

    asyncio.run(main())
    assert REDIS_URL
    client = sync_redis.Redis.from_url(REDIS_URL)
    try:
        ids = [i.decode() for i, _ in client.xrange(stream)]
        assert ids == [f"{n}-0" for n in range(1, 51)]
    finally:
        client.delete(stream)
        client.close()
