"""FunctionGateway: invocations from request (or event) to result, durably and in batches.

Like the engine, the gateway is write-ahead with group commit, on one event loop: calls
that arrive while a write is in flight wait for the next one, so a burst costs one
transaction per loop turn, not one per call.
- ``invoke`` records the invocation (QUEUED) and a ``function.invoked`` event, and only
  once they are committed sends it to a warm worker (RUNNING).
- The worker's answer (or its loss: timeout, crash) makes it SUCCEEDED, FAILED or
  TIMED_OUT, committed with a ``function.finished`` event before any caller sees it.
- A successful function's intents (submit a workflow, call a function, "on completion")
  are applied before its result is recorded; their ids derive from the invocation's, so
  a rerun after a crash applies each once.
- An invocation with a ``key`` exists at most once: a second ``invoke`` with that key gets
  the first one back. This is what makes at-least-once event delivery act exactly once.
On start, invocations left QUEUED or RUNNING by a dead server are queued again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from hexflow.engine.lease import my_owner_id, owner_alive
from hexflow.errors import HexflowError, StoreError
from hexflow.events.faults import INVOCATION_COMMITTED, Faults
from hexflow.events.functions.pools import FunctionPools
from hexflow.events.functions.registry import FunctionRegistry
from hexflow.events.functions.runner import FunctionRef
from hexflow.executors.local.pool import Answer
from hexflow.model.events import FUNCTION_FINISHED, FUNCTION_INVOKED, NewEvent
from hexflow.model.functions import FunctionDef, Invocation, InvocationState
from hexflow.model.ids import new_id
from hexflow.store import events_sql, functions_sql
from hexflow.store.service_db import ServiceDb

log = logging.getLogger("hexflow.functions")

T = TypeVar("T")
IntentHandler = Callable[[Invocation, list[dict[str, Any]]], Awaitable[None]]
S = InvocationState


@dataclass
class _InFlight:
    inv: Invocation
    fn: FunctionDef
    timer: asyncio.TimerHandle | None = None


class FunctionGateway:
    def __init__(
        self,
        db: ServiceDb,
        registry: FunctionRegistry,
        *,
        home: Path,
        faults: Faults,
        clock: Callable[[], float] = time.time,
        on_events: Callable[[set[str]], None] | None = None,
        idle_after: float = 30.0,
        cwd: str | None = None,
    ) -> None:
        self._db = db
        self._search_path = (cwd,) if cwd else ()
        self.registry = registry
        self._home = home
        self._faults = faults
        self._now = clock
        self._on_events = on_events
        self.on_intents: IntentHandler | None = None
        self.owner = my_owner_id()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools = FunctionPools(
            str(home / "functions" / "scratch"), self._answered, self._lost, idle_after=idle_after
        )
        self._blobs: dict[tuple[str, str, int], bytes] = {}
        # What the next group commit writes, and what waits for it.
        self._new: list[tuple[Invocation, FunctionDef, asyncio.Future[Invocation]]] = []
        self._keyed: dict[str, asyncio.Future[Invocation]] = {}  # keys of self._new, in flight
        self._changed: dict[str, Invocation] = {}
        self._events: list[NewEvent] = []
        self._kick: asyncio.Event | None = None
        self._in_flight: dict[int, _InFlight] = {}
        self._known: dict[str, Invocation] = {}  # not yet terminal, by id
        self._waiters: dict[str, list[asyncio.Future[Invocation]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_token = 0
        self._next_warm = 0
        self._idle_after = idle_after
        self._log_dirs: set[str] = set()
        # All the gateway's writes on one thread, with its own connection on SQLite.
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="hexflow-gateway-writer")
        self._raw: Any = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> list[str]:
        """Start the writer on the running loop; returns the ids of invocations requeued."""
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        (self._home / "functions" / "scratch").mkdir(parents=True, exist_ok=True)
        self._pools.start(self._loop)
        self._tasks = [
            self._loop.create_task(self._writer()),
            self._loop.create_task(self._shrinker()),
        ]
        return await self._recover()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a task stuck in I/O must not hold the server's exit
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks = []
        for flight in self._in_flight.values():
            if flight.timer is not None:
                flight.timer.cancel()
        self._pools.shutdown()
        try:  # the writer's connection, closed on its own thread
            await asyncio.wait_for(asyncio.wrap_future(self._writes.submit(self._close_raw)), 10)
        except (TimeoutError, RuntimeError):
            pass
        self._writes.shutdown(wait=False)

    def _close_raw(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    async def _recover(self) -> list[str]:
        found = await asyncio.to_thread(self._unfinished)
        requeued = []
        for inv in found:
            if inv.owner and inv.owner != self.owner and owner_alive(inv.owner):
                continue  # another live server runs it
            try:
                fn = await asyncio.to_thread(
                    self.registry.get, inv.project, inv.function, inv.version
                )
            except HexflowError as exc:
                inv.state = S.FAILED
                inv.error = f"cannot run after restart: {exc.message}"
                inv.ended_at = self._now()
                self._record(inv)
                continue
            if inv.state is S.RUNNING:
                inv.set_state(S.QUEUED)  # lost in flight by a crash: runs again
            inv.owner = self.owner
            self._known[inv.id] = inv
            self._changed[inv.id] = inv
            self._dispatch(inv, fn)
            requeued.append(inv.id)
        self._wake()
        if requeued:
            log.info("requeued %d invocation(s) left unfinished", len(requeued))
        return requeued

    def _unfinished(self) -> list[Invocation]:
        with self._db.read() as conn:
            return functions_sql.unfinished_invocations(conn)

    # ------------------------------------------------------------------ calls
    async def invoke(
        self,
        fn: FunctionDef,
        args: dict[str, Any],
        *,
        caller: str,
        source: str = "api",
        key: str | None = None,
        invocation_id: str | None = None,
    ) -> Invocation:
        """Record an invocation and queue it; returns it once committed. With a ``key``
        used before, returns that earlier invocation and runs nothing."""
        assert self._loop is not None, "FunctionGateway.start first"
        if key is not None and key in self._keyed:  # the same key, not yet committed
            return await asyncio.shield(self._keyed[key])
        now = self._now()
        inv = Invocation(
            id=invocation_id or new_id(16),
            project=fn.project,
            function=fn.name,
            version=fn.version,
            args=args,
            created_at=now,
            caller=caller,
            source=source,
            key=key,
            owner=self.owner,
        )
        done: asyncio.Future[Invocation] = self._loop.create_future()
        self._new.append((inv, fn, done))
        if key is not None:
            self._keyed[key] = done
        self._events.append(
            NewEvent(
                FUNCTION_INVOKED,
                fn.project,
                fn.name,
                now,
                {"invocation": inv.id, "version": fn.version, "source": source},
            )
        )
        self._wake()
        return await done

    async def wait(self, invocation_id: str, timeout: float) -> Invocation | None:
        """The invocation once it has ended (and that is committed), or None after
        ``timeout`` seconds or when this process does not run it."""
        inv = self._known.get(invocation_id)
        if inv is None:
            return None
        assert self._loop is not None
        waiter: asyncio.Future[Invocation] = self._loop.create_future()
        self._waiters.setdefault(invocation_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(invocation_id)
            if waiters and waiter in waiters:
                waiters.remove(waiter)

    def snapshot(self, invocation_id: str) -> Invocation | None:
        """The in-memory state of an invocation this process runs (newer than the DB's)."""
        inv = self._known.get(invocation_id)
        return replace(inv) if inv is not None else None

    def get(self, invocation_id: str, projects: Sequence[str] | None) -> Invocation | None:
        with self._db.read() as conn:
            return functions_sql.get_invocation(conn, invocation_id, projects)

    def pools(self) -> list[dict[str, Any]]:
        return self._pools.stats()

    def warm(self, fn: FunctionDef) -> None:
        """Start the function's pool now and have each of its idle workers load the
        function (its imports, its argument model): the first calls then find warm
        workers, not a worker importing for a few hundred milliseconds with the calls of
        that time queued behind it."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._warm, fn)

    def _warm(self, fn: FunctionDef) -> None:
        pool = self._pools.pool(fn)
        payload = pickle.dumps((self._blob(fn), (None, "", 0), {}), pickle.HIGHEST_PROTOCOL)
        for _ in range(pool.idle):
            self._next_warm -= 1  # negative tokens: answers no invocation waits for
            job: tuple[Any, ...] = (self._next_warm, "python", payload, {}, {}, "")
            job += (os.devnull, os.devnull)
            self._pools.submit(fn, (*job, None, False))

    # ------------------------------------------------------------------ group commit
    def _wake(self) -> None:
        if self._kick is not None:
            self._kick.set()

    async def _writer(self) -> None:
        assert self._kick is not None
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._new or self._changed or self._events:
                await self._write_batch()

    async def _write_batch(self) -> None:
        new, self._new = self._new, []
        changed, self._changed = self._changed, {}
        events, self._events = self._events, []
        # Copies: the loop goes on changing the live records while the thread writes.
        new_rows = [replace(inv) for inv, _, _ in new]
        changed_rows = [replace(inv) for inv in changed.values()]
        try:
            skipped = await self._loop_().run_in_executor(
                self._writes, self._write, new_rows, changed_rows, events
            )
        except Exception as exc:  # noqa: BLE001 - the callers get the error; nothing ran
            log.exception("function gateway: write failed")
            error = exc if isinstance(exc, HexflowError) else StoreError(f"write failed: {exc}")
            for inv, _, done in new:
                self._keyed.pop(inv.key or "", None)
                if not done.done():
                    done.set_exception(error)
            for inv in changed.values():  # keep them for the next try
                self._changed.setdefault(inv.id, inv)
            await asyncio.sleep(0.5)
            return
        if events and self._on_events is not None:
            self._on_events({e.kind for e in events})
        if new:
            self._faults.reach(INVOCATION_COMMITTED)
        for inv, fn, done in new:
            if inv.key is not None:
                self._keyed.pop(inv.key, None)
            if inv.id in skipped:
                earlier = await asyncio.to_thread(self._by_key, inv.key or "")
                if not done.done():
                    done.set_result(earlier or inv)
                continue
            self._known[inv.id] = inv
            if not done.done():
                done.set_result(replace(inv))
            self._dispatch(inv, fn)
        for inv in changed.values():
            if inv.state.terminal:
                self._known.pop(inv.id, None)
                for waiter in self._waiters.pop(inv.id, []):
                    if not waiter.done():
                        waiter.set_result(replace(inv))

    def _loop_(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def sqlite(self) -> bool:
        return self._db.engine.dialect.name == "sqlite"

    async def write_sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the gateway's writer thread with its raw SQLite
        connection (one transaction, which ``fn`` opens and commits), in turn with the
        gateway's own writes. The trigger manager logs webhook events this way: two writers
        on one database handing its write lock back and forth waited ~3 ms each turn."""
        return await self._loop_().run_in_executor(self._writes, self._on_raw, fn, *args)

    def _on_raw(self, fn: Callable[..., T], *args: Any) -> T:
        if self._raw is None:
            self._raw = self._db.engine.raw_connection()
        try:
            with self._db.write_lock:
                return fn(self._raw.driver_connection, *args)
        except sqlite3.Error as exc:
            self._raw.invalidate()  # not trusted for the next batch
            self._raw = None
            raise StoreError(f"store write failed and was rolled back: {exc}") from exc

    def _write(
        self, new: list[Invocation], changed: list[Invocation], events: list[NewEvent]
    ) -> set[str]:
        """On the writer thread. SQLite: plain statements on the writer's own connection
        (functions_sql.write_sqlite); else SQLAlchemy Core on a pooled one."""
        if self.sqlite:
            return self._on_raw(functions_sql.write_sqlite, new, changed, events)
        with self._db.write() as conn:
            skipped = functions_sql.insert_invocations(conn, new) if new else set()
            if skipped:  # no event for an invocation that was not created
                ids = {i.id for i in new if i.id in skipped}
                events = [e for e in events if e.data.get("invocation") not in ids]
            functions_sql.update_invocations(conn, changed)
            events_sql.append(conn, events, numbers=False)
        return skipped

    def _by_key(self, key: str) -> Invocation | None:
        with self._db.read() as conn:
            return functions_sql.invocation_by_key(conn, key)

    # ------------------------------------------------------------------ running
    def _blob(self, fn: FunctionDef) -> bytes:
        key = (fn.project, fn.name, fn.version)
        blob = self._blobs.get(key)
        if blob is None:
            ref = FunctionRef(
                fn.project,
                fn.name,
                fn.version,
                fn.kind.value,
                fn.target,
                fn.source,
                self._search_path,
            )
            blob = self._blobs[key] = pickle.dumps(ref, protocol=pickle.HIGHEST_PROTOCOL)
        return blob

    def _dispatch(self, inv: Invocation, fn: FunctionDef) -> None:
        assert self._loop is not None
        self._next_token += 1
        token = self._next_token
        inv.set_state(S.RUNNING)
        inv.attempt += 1
        inv.started_at = self._now()
        self._changed[inv.id] = inv
        workdir = self._home / "functions" / fn.project
        logs = workdir / "logs"
        if fn.project not in self._log_dirs:  # made once per project and server
            logs.mkdir(parents=True, exist_ok=True)
            self._log_dirs.add(fn.project)
        env = {
            **fn.env,
            "HEXFLOW_INVOCATION_ID": inv.id,
            "HEXFLOW_FUNCTION": fn.name,
            "HEXFLOW_PROJECT": fn.project,
        }
        payload = pickle.dumps(
            (self._blob(fn), (inv.args, inv.id, inv.attempt), {}), protocol=pickle.HIGHEST_PROTOCOL
        )
        stem = str(logs / f"{fn.name}-{inv.id}")
        job: tuple[Any, ...] = (
            token,
            "python",
            payload,
            {},
            env,
            str(workdir),
            stem + ".out",
            stem + ".err",
            None,
            False,
        )
        flight = _InFlight(inv, fn)
        self._in_flight[token] = flight
        flight.timer = self._loop.call_later(fn.timeout, self._pools.kill, token, "timeout")
        self._pools.submit(fn, job)
        self._wake()

    def _answered(self, answer: Answer) -> None:
        token, ok, blob, err_type, message, tb, start, *_ = answer
        flight = self._in_flight.pop(token, None)
        if flight is None:
            return
        if flight.timer is not None:
            flight.timer.cancel()
        inv = flight.inv
        inv.started_at = start or inv.started_at
        inv.ended_at = self._now()
        if not ok:
            text = str(message or "")
            inv.error = text if text.startswith(str(err_type)) else f"{err_type}: {text}"
            inv.traceback = tb
            inv.set_state(S.FAILED)
            self._record(inv)
            return
        try:
            out = pickle.loads(blob)
            value, intents = out["value"], out["intents"]
        except Exception as exc:  # noqa: BLE001 - a function that returned what JSON cannot hold
            inv.error = f"the result could not be read: {type(exc).__name__}: {exc}"
            inv.set_state(S.FAILED)
            self._record(inv)
            return
        inv.result = value
        if intents and self.on_intents is not None:
            assert self._loop is not None
            self._loop.create_task(self._apply(inv, intents))
            return
        inv.set_state(S.SUCCEEDED)
        self._record(inv)

    async def _apply(self, inv: Invocation, intents: list[dict[str, Any]]) -> None:
        assert self.on_intents is not None
        try:
            await self.on_intents(inv, intents)
        except Exception as exc:  # noqa: BLE001 - the invocation fails with the reason
            inv.error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
            inv.set_state(S.FAILED)
        else:
            inv.set_state(S.SUCCEEDED)
        self._record(inv)

    def _lost(self, token: int, reason: str) -> None:
        flight = self._in_flight.pop(token, None)
        if flight is None:
            return
        if flight.timer is not None:
            flight.timer.cancel()
        inv = flight.inv
        inv.ended_at = self._now()
        if reason == "timeout":
            inv.error = f"timed out after {flight.fn.timeout:g} s"
            inv.set_state(S.TIMED_OUT)
        else:
            inv.error = f"the worker running it died ({reason})"
            inv.set_state(S.FAILED)
        self._record(inv)

    def _record(self, inv: Invocation) -> None:
        self._changed[inv.id] = inv
        data: dict[str, Any] = {"invocation": inv.id, "state": inv.state.value}
        if inv.duration is not None:
            data["duration"] = round(inv.duration, 6)
        if inv.error:
            data["error"] = inv.error[:500]
        self._events.append(
            NewEvent(FUNCTION_FINISHED, inv.project, inv.function, self._now(), data)
        )
        self._wake()

    async def _shrinker(self) -> None:
        interval = max(0.5, min(5.0, self._idle_after / 2))
        while True:
            await asyncio.sleep(interval)
            self._pools.shrink()
