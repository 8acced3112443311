"""EventBus: delivers the durable event log to consumers, in order, at least once.

Every event is in the log (committed, numbered) before the bus hands it to anyone. Each
named consumer reads after its own committed offset, handles a batch, then commits the
offset: a crash between the two hands the batch over again after restart, so handlers
make their actions idempotent with deduplication keys (the trigger consumer keys each
invocation ``trigger:<id>:<seq>``), and each action happens exactly once.

Subscribers (``GET /api/v1/events``, server-sent event streams) read from any offset with
``wait``/``stream`` and are woken as soon as this process logs an event (``wake``), or by
a short poll for events other processes log (the engine's threads, other servers). A
consumer is woken only by events of the kinds it reads (``wake(kinds)``); events this
process has already handed to their consumer from memory (the trigger manager's own) wake
no consumer: it finds them at its next poll, to move its offset past them. With
the Redis backend (``events.redis``), consumers of several servers share the work through
a consumer group instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hexflow.events.faults import OFFSET_PENDING, Faults
from hexflow.events.log import EventLog
from hexflow.model.events import Event, kind_matches

if TYPE_CHECKING:
    from hexflow.events.redis import RedisStreams

log = logging.getLogger("hexflow.events")

Handler = Callable[[list[Event]], Awaitable[None]]
# Seconds between two commits of a consumer's offset. A crash hands what was handled since
# the last one over again (at-least-once; the handlers' keys make each action happen once);
# committing after every batch put a write per batch in the way of the event path's own.
COMMIT_EVERY = 0.2


async def _set_or_timeout(event: asyncio.Event | None, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds have passed (no event: sleep)."""
    if event is None:
        await asyncio.sleep(timeout)
        return
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass


@dataclass
class Consumer:
    name: str
    handler: Handler
    from_start: bool = False  # first start: replay the whole log (else start at its head)
    # The crash tests' OFFSET_PENDING point is reached by this consumer (the triggers');
    # others pass it by, so which consumer freezes the server first is not left to chance.
    fault_point: bool = True
    # The kinds of event it handles now (patterns as kind_matches reads them), asked
    # before each read; None: all. The others are passed over in SQL, never decoded.
    kinds: Callable[[], Collection[str] | None] | None = None
    woken: asyncio.Event | None = None  # set by a wake for the kinds it reads

    def wants(self, kinds: Collection[str]) -> bool:
        wanted = self.kinds() if self.kinds is not None else None
        if wanted is None:
            return True
        return any(kind_matches(p, k) for p in wanted for k in kinds)


class EventBus:
    def __init__(
        self,
        log_: EventLog,
        *,
        faults: Faults,
        poll_interval: float = 0.05,
        batch: int = 500,
    ) -> None:
        self.log = log_
        self._faults = faults
        self.poll_interval = poll_interval
        self.batch = batch
        self._consumers: list[Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.delivered = 0
        self.stopping = False  # the server stops: long polls and streams answer now
        self._redis: RedisStreams | None = None

    def use_redis(self, redis: RedisStreams) -> None:
        """Deliver to consumers through Redis consumer groups (before ``start``)."""
        self._redis = redis

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        from_start: bool = False,
        fault_point: bool = True,
        kinds: Callable[[], Collection[str] | None] | None = None,
    ) -> None:
        """Add a consumer (before ``start``)."""
        self._consumers.append(Consumer(name, handler, from_start, fault_point, kinds))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        redis = self._redis
        if redis is not None:
            self._tasks.append(self._loop.create_task(redis.relay(self)))
            self._tasks.append(self._loop.create_task(redis.follow(self)))
        for consumer in self._consumers:
            consumer.woken = asyncio.Event()
            run = redis.consume(self, consumer) if redis else self._consume(consumer)
            self._tasks.append(self._loop.create_task(run))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a client stuck in I/O must not hold the server's exit
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks = []
        if self._redis is not None:
            try:
                await asyncio.wait_for(self._redis.close(), 5)
            except (TimeoutError, Exception):  # noqa: BLE001 - closing anyway
                log.warning("the Redis connection did not close cleanly")

    def wake(self, kinds: Collection[str] | None = None) -> None:
        """New events are in the log (callable from any thread). ``kinds``: theirs, which
        consumers to wake (None: every consumer; empty: subscribers only)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._notify(kinds)
        else:
            loop.call_soon_threadsafe(self._notify, kinds)

    def release_waiters(self) -> None:
        """The server is stopping: long polls answer with what they have and streams end,
        so that its shutdown does not wait for them (callable from a signal handler)."""
        self.stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._notify)

    def _notify(self, kinds: Collection[str] | None = None) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()  # the next waiters wait for the next change
        for consumer in self._consumers:
            if consumer.woken is not None and (kinds is None or (kinds and consumer.wants(kinds))):
                consumer.woken.set()

    async def _woken_or_timeout(self, consumer: Consumer, timeout: float) -> None:
        woken = None if self.stopping else consumer.woken
        await _set_or_timeout(woken or self._changed, timeout)

    async def _changed_or_timeout(self, timeout: float) -> None:
        await _set_or_timeout(self._changed, timeout)

    # ------------------------------------------------------------------ consumers
    async def _consume(self, consumer: Consumer) -> None:
        offset = await asyncio.to_thread(self.log.offset, consumer.name)
        if offset is None:
            offset = 0 if consumer.from_start else await asyncio.to_thread(self.log.head)
            await asyncio.to_thread(self.log.commit, consumer.name, offset)
        committing: asyncio.Future[None] | None = None
        committed, committed_at = offset, 0.0
        while True:
            try:
                kinds = consumer.kinds() if consumer.kinds is not None else None
                now = time.monotonic()
                if kinds is not None and not kinds and now - committed_at < 1.0:
                    # it wants nothing now: no read per event logged; its offset still
                    # moves to the head once a second (it must not later handle what
                    # was logged before it wanted it)
                    await self._woken_or_timeout(consumer, max(self.poll_interval, 1.0))
                    continue
                if consumer.woken is not None:  # before the read: a wake during it counts
                    consumer.woken.clear()
                events, upto = await asyncio.to_thread(
                    self.log.read_kinds, offset, kinds, limit=self.batch
                )
                moved = upto > offset
                if events:
                    await consumer.handler(events)
                    self.delivered += len(events)
                    if consumer.fault_point:
                        self._faults.reach(OFFSET_PENDING)
                offset = max(offset, upto)
                # The offset can wait (what comes again is handled once): it is committed
                # at most every COMMIT_EVERY seconds while events come, else once idle.
                due = now - committed_at >= (COMMIT_EVERY if events else 1.0)
                if offset > committed and (due or not moved):
                    committed, committed_at = offset, now
                    # The handler's actions are durable: the offset may move. Its commit
                    # overlaps what follows; commits stay in order (one at a time).
                    if committing is not None:
                        previous, committing = committing, None
                        await previous  # a failed commit raises here: the batch comes again
                    committing = asyncio.ensure_future(
                        asyncio.to_thread(self.log.commit, consumer.name, offset)
                    )
                if len(events) < self.batch:  # caught up: the next read when woken or polled
                    await self._woken_or_timeout(consumer, self.poll_interval)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep consuming; the batch comes again
                log.exception("event consumer %s failed; retrying", consumer.name)
                await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ subscribers
    async def wait(
        self,
        after: int,
        *,
        projects: Collection[str] | None,
        timeout: float,
        limit: int = 500,
    ) -> tuple[list[Event], int]:
        """(events after ``after`` of ``projects``, waiting up to ``timeout`` for the first;
        the ``seq`` read up to). Pass the second back as ``after`` next time: events of
        other projects are then not read again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wanted = None if projects is None else set(projects)
        while True:
            found = await asyncio.to_thread(self.log.read, after, limit=limit)
            if found:
                after = found[-1].seq
            events = [e for e in found if wanted is None or e.project in wanted]
            left = deadline - loop.time()
            if events or left <= 0 or self.stopping:
                return events, after
            if len(found) < limit:  # caught up with the log: wait for news
                await self._changed_or_timeout(min(left, self.poll_interval))

    async def stream(
        self, after: int, *, projects: Collection[str] | None, heartbeat: float = 15.0
    ) -> AsyncIterator[Event | None]:
        """Every event after ``after``, forever; None every ``heartbeat`` seconds without
        one (a server-sent event stream sends a comment then). The seam SSE routes read."""
        while not self.stopping:
            events, after = await self.wait(after, projects=projects, timeout=heartbeat)
            if not events and not self.stopping:
                yield None
            for event in events:
                yield event
