"""EventSystem: the event bus, the function gateway and the triggers of one server, built
together, started on the server's event loop and stopped with it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from hexflow.data.tiers import StorageConfig
from hexflow.events.bus import EventBus
from hexflow.events.config import EventsConfig
from hexflow.events.faults import Faults
from hexflow.events.functions.callbacks import CONSUMER, CallbackSender
from hexflow.events.functions.gateway import FunctionGateway
from hexflow.events.functions.keys import load_key
from hexflow.events.functions.limits import RateLimiter
from hexflow.events.functions.registry import FunctionRegistry
from hexflow.events.functions.resources import write_tiers
from hexflow.events.functions.uploads import Uploads
from hexflow.events.log import EventLog
from hexflow.events.triggers.manager import TriggerManager
from hexflow.store.service_db import ServiceDb

log = logging.getLogger("hexflow.events")


class EventSystem:
    def __init__(
        self,
        db: ServiceDb,
        config: EventsConfig,
        *,
        home: Path,
        clock: Callable[[], float] = time.time,
        cwd: str | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        if storage is not None:  # where functions find the project's tiers (ctx.tier)
            write_tiers(home / "functions", storage)
        self.faults = Faults(config.fault, home)
        self.log = EventLog(db, clock)
        self.bus = EventBus(self.log, faults=self.faults, poll_interval=config.poll_interval)
        self.registry = FunctionRegistry(db, clock, cwd=cwd)
        self.gateway = FunctionGateway(
            db,
            self.registry,
            home=home,
            faults=self.faults,
            clock=clock,
            on_events=self.bus.wake,
            idle_after=config.idle_after,
            cwd=cwd,
        )
        self.triggers = TriggerManager(db, self.bus, self.gateway, faults=self.faults, clock=clock)
        self.limiter = RateLimiter(config.rate, config.burst)
        self.key = load_key(home)
        # Callback URLs of asynchronous invocations: a consumer of function.finished events
        self.callbacks = CallbackSender(db, config, self.key, clock=clock)
        self.bus.register(
            CONSUMER, self.callbacks.on_events, fault_point=False, kinds=self.callbacks.kinds
        )
        # Pre-signed uploads for data over the payload limit
        self.uploads = Uploads(
            self.key, storage, max_bytes=config.upload_max_bytes, ttl=config.upload_ttl
        )
        self.redis = None
        if config.redis_url:
            from hexflow.events.redis import RedisStreams

            self.redis = RedisStreams(config.redis_url, self.log, owner=self.gateway.owner)
            self.bus.use_redis(self.redis)
        self.started = False
        self._pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.gateway.start()
        await self.triggers.start()
        await self.callbacks.start()
        await self.bus.start()
        if self.config.retention > 0:
            self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())
        self.started = True

    async def _prune_forever(self) -> None:
        """Retention: events older than ``config.retention`` that every consumer has
        handled are deleted, every ``config.prune_every`` seconds."""
        while True:
            try:
                gone = await asyncio.to_thread(self.log.prune, self.config.retention)
                if gone:
                    log.info("pruned %d event(s) older than %g s", gone, self.config.retention)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("pruning the event log failed")
            await asyncio.sleep(self.config.prune_every)

    async def stop(self) -> None:
        self.started = False
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.wait([self._pruner], timeout=5)
            self._pruner = None
        await self.bus.stop()
        await self.callbacks.stop()
        await self.triggers.stop()
        await self.gateway.stop()
