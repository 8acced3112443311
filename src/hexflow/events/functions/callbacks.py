"""Callback URLs of asynchronous invocations: when one ends, POST it to the caller's URL.

- ``check_url`` admits only http(s) URLs to hosts the server's settings list
  (``EventsConfig.callback_hosts``); anything else is a 422 naming ``callback``.
- ``record`` stores the URL before the invocation exists (its id is chosen first), so no
  end can be missed. The bus consumer ``callbacks`` (``on_events``) marks the callbacks
  of ``function.finished`` invocations due, durably, before its offset moves. It reads
  those events only while some callback waits (``kinds``: an invocation without one, the
  usual case, costs it nothing); the sender's poll (at most a second apart) also sweeps
  waiting callbacks whose invocation has ended, so an end the consumer skipped in the
  moment its interest changed is still delivered.
- The sender POSTs each due callback: the invocation's JSON (as
  ``GET /api/v1/invocations/{id}``), signed like webhooks (``webhooks.signed_headers``)
  with the project's callback secret. A 2xx answer delivers it; anything else is retried
  with exponential backoff for ``callback_retry_for`` seconds, across restarts: at least
  once (a receiver deduplicates by ``X-Hexflow-Invocation``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from hexflow.errors import SpecError
from hexflow.events.config import EventsConfig
from hexflow.events.functions.keys import derive
from hexflow.events.triggers.webhooks import signed_headers
from hexflow.model.events import FUNCTION_FINISHED, Event
from hexflow.model.functions import Invocation
from hexflow.store import callbacks_sql, functions_sql
from hexflow.store.callbacks_sql import Callback
from hexflow.store.service_db import ServiceDb

log = logging.getLogger("hexflow.functions.callbacks")

CONSUMER = "callbacks"
INVOCATION_HEADER = "X-Hexflow-Invocation"
CALLBACK_SECRET_HEADER = "X-Hexflow-Callback-Secret"  # of the invoke answer
MAX_URL = 2048
FIRST_RETRY = 1.0  # seconds; doubles with each failure
LONGEST_RETRY = 300.0


def check_url(url: str, allowed: tuple[str, ...]) -> str:
    """The URL if the server may call it; SpecError (422, field ``callback``) if not."""
    hint = "ask the server's administrator to allow the host (--callback-host)"
    if len(url) > MAX_URL:
        raise SpecError(f"the callback URL is over {MAX_URL} characters", field="callback")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise SpecError(f"bad callback URL {url!r}: {exc}", field="callback") from None
    if parts.scheme not in ("http", "https") or not host:
        raise SpecError(
            f"bad callback URL {url!r}: only http and https URLs with a host",
            hint="e.g. https://receiver.example.org/hooks/done",
            field="callback",
        )
    if parts.username is not None or parts.password is not None:
        raise SpecError(
            "the callback URL must not carry credentials",
            hint="the server signs each callback; verify X-Hexflow-Signature instead",
            field="callback",
        )
    if not host_allowed(host, allowed):
        raise SpecError(f"callbacks to {host!r} are not allowed", hint=hint, field="callback")
    return url


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    for pattern in allowed:
        pattern = pattern.lower().strip()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def callback_secret(key: bytes, project: str) -> str:
    """The secret a project's callbacks are signed with (the same on every server)."""
    return "cbs_" + derive(key, f"callback:{project}")


class CallbackSender:
    def __init__(
        self,
        db: ServiceDb,
        config: EventsConfig,
        key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._config = config
        self._key = key
        self._now = clock
        self._transport = transport
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._pending = True  # some callback may wait (known after the first poll)
        self._recorded = 0  # callbacks recorded by this process (see _refresh)

    def secret(self, project: str) -> str:
        return callback_secret(self._key, project)

    def check(self, url: str) -> str:
        return check_url(url, self._config.callback_hosts)

    def record(self, invocation_id: str, project: str, url: str) -> None:
        """Store the callback of an invocation about to be made (blocking: a DB write)."""
        with self._db.write() as conn:
            callbacks_sql.add(conn, invocation_id, project, url, self._now())
        self._recorded += 1
        self._pending = True

    def get(self, invocation_id: str) -> Callback | None:
        with self._db.read() as conn:
            return callbacks_sql.get(conn, invocation_id)

    # ------------------------------------------------------------------ bus consumer
    def kinds(self) -> set[str]:
        """What the consumer reads: function ends while a callback waits, else nothing."""
        return {FUNCTION_FINISHED} if self._pending else set()

    async def on_events(self, events: list[Event]) -> None:
        ended = [
            str(e.data["invocation"])
            for e in events
            if e.kind == FUNCTION_FINISHED and "invocation" in e.data
        ]
        if not ended:
            return
        if await asyncio.to_thread(self._mark_due, ended) and self._wake is not None:
            self._wake.set()

    def _mark_due(self, ids: list[str]) -> int:
        # A read first: most invocations have no callback, and a read takes no write lock
        # from the gateway's group commit.
        with self._db.read() as conn:
            found = callbacks_sql.waiting(conn, ids)
        if not found:
            return 0
        with self._db.write() as conn:
            return callbacks_sql.mark_due(conn, found, self._now())

    # ------------------------------------------------------------------ sender
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._sending.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a receiver that hangs must not hold the server's exit
            await asyncio.wait(tasks, timeout=5)
        self._task = None
        self._sending.clear()

    async def _run(self) -> None:
        assert self._wake is not None
        async with httpx.AsyncClient(
            transport=self._transport, timeout=self._config.callback_timeout
        ) as client:
            while True:
                self._wake.clear()  # before reading: a wake during the read is kept
                try:
                    wait = await self._send_due(client)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the store failed: try again soon
                    log.exception("callbacks: reading what is due failed")
                    wait = 1.0
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass

    async def _send_due(self, client: httpx.AsyncClient) -> float:
        """Start a POST for each due callback; returns how long to sleep (at most 1 s: a
        callback made due by another server process is found by this poll)."""
        await asyncio.to_thread(self._refresh)
        found = await asyncio.to_thread(self._due)
        for callback in found:
            if callback.invocation_id not in self._sending:
                task = asyncio.get_running_loop().create_task(self._send(client, callback))
                self._sending[callback.invocation_id] = task
        upcoming = await asyncio.to_thread(self._next_due)
        if upcoming is None:
            return 1.0
        return max(0.01, min(1.0, upcoming - self._now()))

    def _refresh(self) -> None:
        """Sweep the ends the consumer did not see; whether a callback still waits (one
        recorded meanwhile keeps the consumer reading)."""
        recorded = self._recorded
        with self._db.read() as conn:
            waiting = callbacks_sql.any_waiting(conn)
        if waiting:
            with self._db.write() as conn:
                callbacks_sql.sweep(conn, self._now())
        self._pending = waiting or self._recorded != recorded

    def _due(self) -> list[Callback]:
        with self._db.read() as conn:
            return callbacks_sql.due(conn, self._now())

    def _next_due(self) -> float | None:
        with self._db.read() as conn:
            return callbacks_sql.next_due(conn)

    async def _send(self, client: httpx.AsyncClient, callback: Callback) -> None:
        try:
            await self._attempt(client, callback)
        except Exception:  # noqa: BLE001 - the callback stays due; the next pass retries
            log.exception("callback of invocation %s", callback.invocation_id)
        finally:
            self._sending.pop(callback.invocation_id, None)

    async def _attempt(self, client: httpx.AsyncClient, callback: Callback) -> None:
        inv = await asyncio.to_thread(self._invocation, callback.invocation_id)
        attempts = callback.attempts + 1
        error: str | None = None
        if inv is None:
            error = "the invocation is gone"
        else:
            body = json.dumps(inv.summary(), separators=(",", ":"), default=str).encode()
            headers = {
                **signed_headers(self.secret(callback.project), body, timestamp=self._now()),
                "Content-Type": "application/json",
                INVOCATION_HEADER: inv.id,
                "User-Agent": "hexflow-callbacks",
            }
            try:
                answer = await client.post(callback.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if not 200 <= answer.status_code < 300:
                    error = f"HTTP {answer.status_code}"
        now = self._now()
        if error is None:
            await asyncio.to_thread(self._write, callbacks_sql.delivered, callback, attempts, now)
            return
        retry_at: float | None = now + min(LONGEST_RETRY, FIRST_RETRY * 2 ** (attempts - 1))
        started = callback.finished_at or now
        if inv is None or (retry_at or now) - started > self._config.callback_retry_for:
            retry_at = None
            log.warning(
                "callback of invocation %s to %s abandoned after %d attempts: %s",
                callback.invocation_id,
                callback.url,
                attempts,
                error,
            )
        await asyncio.to_thread(
            self._write, callbacks_sql.failed, callback, attempts, error, retry_at
        )

    def _invocation(self, invocation_id: str) -> Invocation | None:
        with self._db.read() as conn:
            return functions_sql.get_invocation(conn, invocation_id)

    def _write(self, op: Callable[..., None], callback: Callback, *args: object) -> None:
        with self._db.write() as conn:
            op(conn, callback.invocation_id, *args)
