"""Redis Streams delivery, for several server processes on one database.

The SQL log stays the record: events are committed there first. A relay in each server
copies the log into one stream with explicit ids ``<seq>-0``: Redis refuses an id that is
not above the newest, so two relays (or a relay after a restart) never copy an event twice.
Each bus consumer is a consumer group; every server reads with XREADGROUP, so an event
goes to one server, which acknowledges it (XACK) after handling it. Entries a dead server
read but never acknowledged are claimed by another after ``claim_after`` seconds
(XAUTOCLAIM); the handlers' deduplication keys make such a redelivery act once. Every
server also follows the stream (XREAD BLOCK) to wake its subscribers at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from hexflow.events.log import EventLog
from hexflow.model.events import Event

if TYPE_CHECKING:
    from hexflow.events.bus import Consumer, EventBus

log = logging.getLogger("hexflow.events")
STREAM = "hexflow:events"
_RELAY = "redis-relay"


class RedisStreams:
    def __init__(
        self,
        url: str,
        log_: EventLog,
        *,
        owner: str,
        stream: str = STREAM,
        claim_after: float = 5.0,
        block: float = 0.5,
        batch: int = 500,
    ) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=max(5.0, block * 4))
        self.log = log_
        self.owner = owner
        self.stream = stream
        self.claim_after = claim_after
        self.block = block
        self.batch = batch

    async def close(self) -> None:
        await self._redis.aclose()

    # ------------------------------------------------------------------ relay
    async def relay(self, bus: EventBus) -> None:
        """Copy the SQL log into the stream, forever."""
        offset = await asyncio.to_thread(self.log.offset, f"{_RELAY}:{self.stream}")
        if offset is None:
            offset = await self._stream_head()
        while True:
            try:
                events = await asyncio.to_thread(self.log.read, offset, limit=self.batch)
                if not events:
                    await bus._changed_or_timeout(bus.poll_interval)
                    continue
                await self.publish(events)
                offset = events[-1].seq
                await asyncio.to_thread(self.log.commit, f"{_RELAY}:{self.stream}", offset)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: try again
                log.exception("redis relay failed; retrying")
                await asyncio.sleep(1.0)

    async def publish(self, events: list[Event]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for ev in events:
            pipe.xadd(self.stream, {"e": json.dumps(ev.as_dict())}, id=f"{ev.seq}-0")
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "equal or smaller" not in str(result):
                raise result  # not "already copied": a real failure

    async def _stream_head(self) -> int:
        last = await self._redis.xrevrange(self.stream, count=1)
        return int(last[0][0].split(b"-")[0]) if last else 0

    # ------------------------------------------------------------------ consumer groups
    async def consume(self, bus: EventBus, consumer: Consumer) -> None:
        group = consumer.name
        start = await asyncio.to_thread(self.log.offset, consumer.name)
        if start is None:
            start = 0 if consumer.from_start else await asyncio.to_thread(self.log.head)
        try:
            await self._redis.xgroup_create(self.stream, group, id=f"{start}-0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: another server made it
            if "BUSYGROUP" not in str(exc):
                raise
        idle_ms = int(self.claim_after * 1000)
        while True:
            try:
                _next, claimed, *_ = await self._redis.xautoclaim(
                    self.stream, group, self.owner, idle_ms, "0-0", count=self.batch
                )
                entries = claimed
                if not entries:
                    got = await self._redis.xreadgroup(
                        group,
                        self.owner,
                        {self.stream: ">"},
                        count=self.batch,
                        block=int(self.block * 1000),
                    )
                    entries = got[0][1] if got else []
                entries = [(i, f) for i, f in entries if f]  # claimed entries may be deleted
                if not entries:
                    continue
                events = [_event(fields) for _, fields in entries]
                await consumer.handler(events)
                bus.delivered += len(events)
                await self._redis.xack(self.stream, group, *[i for i, _ in entries])
                await asyncio.to_thread(self.log.commit, consumer.name, events[-1].seq)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep consuming; unacknowledged entries return
                log.exception("redis consumer %s failed; retrying", group)
                await asyncio.sleep(1.0)

    async def follow(self, bus: EventBus) -> None:
        """Wake this server's subscribers whenever any server's event reaches the stream."""
        last = "$"
        while True:
            try:
                got = await self._redis.xread({self.stream: last}, count=1000, block=1000)
                if got:
                    last = got[0][1][-1][0]
                    bus._notify()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("redis follow failed; retrying")
                await asyncio.sleep(1.0)


def _event(fields: dict[bytes, bytes]) -> Event:
    d = json.loads(fields[b"e"])
    return Event(d["seq"], d["kind"], d["project"], d["subject"], d["at"], d["data"], d["key"])
