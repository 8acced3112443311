"""TriggerManager: create, list and delete triggers, and fire them — always through the bus.

A webhook request, a file arrival or a schedule tick is first logged as an event (keyed,
so a retry or a second server logs it once); the ``triggers`` consumer of the bus then
calls the function of every trigger the event matches, or submits its workflow. Each
call is keyed ``trigger:<id>:<seq>`` (each run's id derives from the same): delivered
twice (after a crash), an event still calls or submits once.

Events this process logs itself (webhooks, file arrivals) are also fired at once, from
memory, as soon as they are committed (``_deliver_local``), instead of waiting for the
consumer to read them back; the consumer then waits for that firing and moves on. Its
offset still moves only once every event before it has been handled, so a crash loses
nothing: what was not yet handled is delivered again, and the keys make it call once.
Firing statistics are written in batches off the event path (``_record_later``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hexflow.errors import AuthError, Conflict, HexflowError, NotFound, SpecError
from hexflow.events.bus import EventBus
from hexflow.events.faults import EVENT_LOGGED, Faults
from hexflow.events.functions.gateway import FunctionGateway
from hexflow.events.triggers import schedules, webhooks
from hexflow.events.triggers.files import FileWatcher
from hexflow.events.triggers.targets import WorkflowTargets, body_value, from_event
from hexflow.model.access import Role, Scope, role_allows
from hexflow.model.events import FILE_ARRIVED, SCHEDULE_FIRED, WEBHOOK_RECEIVED, Event, NewEvent
from hexflow.model.ids import new_id
from hexflow.model.triggers import Trigger, TriggerKind, check_trigger_config
from hexflow.store import events_sql, triggers_sql
from hexflow.store.events_schema import triggers as triggers_table
from hexflow.store.service_db import ServiceDb

log = logging.getLogger("hexflow.triggers")
CONSUMER = "triggers"
# Seconds a trigger's creator's right to invoke in its project is trusted without a read
# (as the service's credential cache: a removal takes effect within this long).
OWNER_TTL = 1.0
RUN_ENDED = ["run.succeeded", "run.failed", "run.cancelled"]


class TriggerManager:
    def __init__(
        self,
        db: ServiceDb,
        bus: EventBus,
        gateway: FunctionGateway,
        *,
        faults: Faults,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.bus = bus
        self.gateway = gateway
        self._faults = faults
        self._now = clock
        self._triggers: dict[str, Trigger] = {}
        self._kinds: set[str] | None = None  # of the enabled triggers (None: to compute)
        self._version: tuple[int, float] = (-1, 0.0)
        self._files = FileWatcher(self._file_arrived)
        self._schedule_changed: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Webhook events waiting for the next group commit, and what waits for them.
        self._hooks: list[tuple[str, str, float, NewEvent, asyncio.Future[Event]]] = []
        self._hooks_kick: asyncio.Event | None = None
        # Firings of events logged here, by seq, until the consumer reaches them.
        self._local: dict[int, asyncio.Task[None]] = {}
        self._firings: list[tuple[Trigger, Event, str | None]] = []  # stats not yet written
        self._firings_due: asyncio.TimerHandle | None = None
        self.workflows: WorkflowTargets | None = None  # set by the service
        self._declared: dict[str, Collection[str]] = {}  # a workflow trigger's params, by id
        self._owners: dict[tuple[str, str], tuple[Role | None, float]] = {}  # role, until
        bus.register(CONSUMER, self.handle, kinds=self.kinds)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._schedule_changed = asyncio.Event()
        self._hooks_kick = asyncio.Event()
        await asyncio.to_thread(self.reload)
        self._tasks = [
            self._loop.create_task(self._files.run()),
            self._loop.create_task(self._scheduler()),
            self._loop.create_task(self._hook_writer()),
            self._loop.create_task(self._reloader()),
        ]

    async def stop(self) -> None:
        firing = set(self._local.values())
        for task in [*self._tasks, *firing]:
            task.cancel()
        if self._tasks or firing:  # bounded: a task stuck in I/O must not hold the exit
            await asyncio.wait([*self._tasks, *firing], timeout=5)
        self._tasks, self._local = [], {}
        if self._firings_due is not None:
            self._firings_due.cancel()
            self._firings_due = None
        batch, self._firings = self._firings, []
        if batch:
            await asyncio.to_thread(self._record_firings, batch)

    def reload(self) -> None:
        """Read the triggers again (another server or process may have changed them)."""
        with self._db.read() as conn:
            found = triggers_sql.list_triggers(conn, None)
            self._version = self._read_version(conn)
        self._set_all({t.id: t for t in found})

    def _set_all(self, found: dict[str, Trigger]) -> None:
        self._triggers = found
        self._kinds = None
        self._files.update([t for t in found.values() if t.kind is TriggerKind.FILE])
        if self._schedule_changed is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule_changed.set)

    @staticmethod
    def _read_version(conn: Any) -> tuple[int, float]:
        row = conn.execute(
            select(func.count(triggers_table.c.id), func.max(triggers_table.c.created_at))
        ).first()
        return (int(row[0] or 0), float(row[1] or 0.0)) if row else (0, 0.0)

    async def _reloader(self) -> None:
        """Another server may add or remove triggers: look twice a second (the bus reads
        only the kinds of event the triggers known here want)."""
        while True:
            await asyncio.sleep(0.5)
            try:
                await asyncio.to_thread(self._reload_if_changed)
            except HexflowError as exc:
                log.warning("could not read the triggers: %s", exc)

    def _reload_if_changed(self) -> None:
        with self._db.read() as conn:
            version = self._read_version(conn)
        if version != self._version:
            self.reload()

    # ------------------------------------------------------------------ CRUD
    def create(
        self,
        project: str,
        *,
        name: str,
        kind: str,
        function: str,
        config: dict[str, Any],
        args: dict[str, Any],
        user: str,
        trigger_id: str | None = None,
        workflow: str | None = None,
    ) -> Trigger:
        """A new trigger (its webhook secret is in the returned record, never shown again).
        Its target: ``function`` (a registered function's name) or ``workflow`` (YAML)."""
        try:
            tkind = TriggerKind(kind)
        except ValueError:
            raise SpecError(
                f"unknown trigger kind {kind!r}",
                hint=f"one of: {', '.join(k.value for k in TriggerKind)}",
                field="kind",
            ) from None
        if not isinstance(config, dict):
            raise SpecError("config must be an object", field="config")
        if not isinstance(args, dict):
            raise SpecError("args must be an object", field="args")
        config = check_trigger_config(tkind, config)
        if tkind is TriggerKind.SCHEDULE and "cron" in config:
            schedules.check_cron(config["cron"])
        if tkind is TriggerKind.FILE:
            config["path"] = str(Path(config["path"]).expanduser().resolve())
        if (workflow is None) == (not function):
            raise SpecError(
                "a trigger runs a function or a workflow: give one of them",
                hint='"function": NAME of a registered function, or "workflow": its YAML',
                field="function" if workflow is None else "workflow",
            )
        if workflow is not None:
            if self.workflows is None:
                raise SpecError("this server cannot submit workflows from triggers")
            declared = self.workflows.params(project, workflow)
            unknown = sorted(set(args) - set(declared))
            if unknown:
                raise SpecError(
                    f"the workflow has no param {unknown[0]!r}",
                    hint=f"its params: {', '.join(sorted(declared)) or 'none'}",
                    field=f"args.{unknown[0]}",
                )
            function = ""
        else:
            self.gateway.registry.get(project, function)  # NotFound if there is no such one
        trigger = Trigger(
            id=trigger_id or new_id(16),
            project=project,
            name=name or kind,
            kind=tkind,
            function=function,
            config=config,
            args=args,
            created_at=self._now(),
            created_by=user,
            secret=webhooks.new_secret() if tkind is TriggerKind.WEBHOOK else None,
            workflow=workflow,
        )
        with self._db.write(conflict=f"trigger {trigger.id} exists already") as conn:
            triggers_sql.insert_trigger(conn, trigger)
            self._version = self._read_version(conn)
        self._set_all({**self._triggers, trigger.id: trigger})
        return trigger

    def list_triggers(
        self, projects: Collection[str], kind: TriggerKind | None = None
    ) -> list[Trigger]:
        with self._db.read() as conn:
            return triggers_sql.list_triggers(conn, projects, kind)

    def get(self, trigger_id: str, projects: Collection[str] | None) -> Trigger:
        with self._db.read() as conn:
            found = triggers_sql.get_trigger(conn, trigger_id, projects)
        if found is None:
            raise NotFound(
                f"no trigger {trigger_id!r}",
                hint="`hexflow triggers list` shows the triggers of your projects",
                trigger=trigger_id,
            )
        return found

    def delete(self, trigger_id: str, projects: Collection[str]) -> Trigger:
        trigger = self.get(trigger_id, projects)
        with self._db.write() as conn:
            triggers_sql.delete_trigger(conn, trigger_id)
            self._version = self._read_version(conn)
        found = dict(self._triggers)
        found.pop(trigger_id, None)
        self._set_all(found)
        return trigger

    # ------------------------------------------------------------------ sources of events
    async def webhook(self, trigger_id: str, headers: Any, body: bytes) -> Event:
        """Check a webhook request and log its event; the bus fires the trigger."""
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            await asyncio.to_thread(self.reload)
            trigger = self._triggers.get(trigger_id)
        if trigger is None or trigger.kind is not TriggerKind.WEBHOOK or not trigger.enabled:
            raise NotFound(f"no webhook {trigger_id!r}", hint="check the hook URL")
        assert trigger.secret is not None
        now = self._now()
        tolerance = float(trigger.config.get("tolerance", 300))
        nonce = headers.get(webhooks.NONCE)
        at = webhooks.check(
            trigger.secret,
            timestamp=headers.get(webhooks.TIMESTAMP),
            nonce=nonce,
            sig=headers.get(webhooks.SIGNATURE),
            body=body,
            now=now,
            tolerance=tolerance,
        )
        event = NewEvent(
            WEBHOOK_RECEIVED,
            trigger.project,
            trigger.id,
            now,
            {
                "trigger": trigger.id,
                "body": body_value(body, headers.get("content-type")),
                "sent_at": at,
            },
            key=f"hook:{trigger.id}:{nonce}",
        )
        assert self._loop is not None and self._hooks_kick is not None
        done: asyncio.Future[Event] = self._loop.create_future()
        self._hooks.append((trigger.id, nonce, at + tolerance, event, done))
        self._hooks_kick.set()
        logged = await done
        self._faults.reach(EVENT_LOGGED)
        return logged

    async def _hook_writer(self) -> None:
        """Group commit of webhook events: the requests of a loop turn, one transaction."""
        assert self._hooks_kick is not None
        while True:
            await self._hooks_kick.wait()
            self._hooks_kick.clear()
            while self._hooks:
                batch, self._hooks = self._hooks, []
                try:
                    if self.gateway.sqlite:  # on the gateway's writer: no lock ping-pong
                        hooks = [(t, n, exp, ev) for t, n, exp, ev, _ in batch]
                        logged = await self.gateway.write_sqlite(
                            triggers_sql.log_hooks_sqlite, hooks, self._now()
                        )
                    else:
                        logged = await asyncio.to_thread(self._log_hooks, batch)
                except Exception as exc:  # noqa: BLE001 - the senders get the error
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                self._deliver_local([e for e in logged if e is not None])
                self.bus.wake(kinds=())  # fired from memory: subscribers only
                for (*_, done), event in zip(batch, logged, strict=True):
                    if done.done():
                        continue
                    if event is None:
                        done.set_exception(
                            AuthError(
                                "this webhook request was seen before (replayed nonce)",
                                hint="send every request with a new nonce",
                                field=webhooks.NONCE,
                            )
                        )
                    else:
                        done.set_result(event)

    def _log_hooks(
        self, batch: list[tuple[str, str, float, NewEvent, asyncio.Future[Event]]]
    ) -> list[Event | None]:
        """Record the nonces and log the events; None for a replayed nonce."""
        try:
            with self._db.write(conflict="replayed") as conn:
                triggers_sql.purge_nonces(conn, self._now())
                fresh = triggers_sql.fresh_nonces(conn, [(t, n) for t, n, *_ in batch])
                new = [
                    (t, n, exp, ev)
                    for (t, n, exp, ev, _), ok in zip(batch, fresh, strict=True)
                    if ok
                ]
                triggers_sql.insert_nonces(conn, [(t, n, exp) for t, n, exp, _ in new])
                events = iter(events_sql.append(conn, [ev for *_, ev in new]))
                return [next(events) if ok else None for ok in fresh]
        except Conflict:  # another server took a nonce meanwhile: one by one
            return [self._log_one(*item[:4]) for item in batch]

    def _log_one(
        self, trigger_id: str, nonce: str, expires_at: float, event: NewEvent
    ) -> Event | None:
        try:
            with self._db.write(conflict="replayed") as conn:
                triggers_sql.insert_nonces(conn, [(trigger_id, nonce, expires_at)])
                return events_sql.append(conn, [event])[0]
        except Conflict:
            return None

    async def _file_arrived(self, trigger: Trigger, path: Path, st: Any) -> None:
        event = NewEvent(
            FILE_ARRIVED,
            trigger.project,
            trigger.id,
            self._now(),
            {"trigger": trigger.id, "path": str(path), "name": path.name, "size": st.st_size},
            key=f"file:{trigger.id}:{path}:{st.st_size}:{st.st_mtime_ns}",
        )
        self._deliver_local(await asyncio.to_thread(self.bus.log.append, [event]))
        self.bus.wake(kinds=())  # fired from memory: subscribers only

    async def _scheduler(self) -> None:
        """Log a ``schedule.fired`` event at every tick of every schedule trigger."""
        assert self._schedule_changed is not None
        nexts: dict[str, float] = {}
        while True:
            self._schedule_changed.clear()
            now = self._now()
            due: list[NewEvent] = []
            current = {t.id: t for t in self._triggers.values() if t.kind is TriggerKind.SCHEDULE}
            for t in current.values():
                if not t.enabled:
                    continue
                if t.id not in nexts:  # first sight: catch up the newest missed tick once
                    missed = schedules.last_tick(t.config, now, t.created_at)
                    since = t.last_fired_at or t.created_at
                    nexts[t.id] = (
                        missed
                        if missed is not None and missed > since
                        else (schedules.next_tick(t.config, now, t.created_at))
                    )
                if nexts[t.id] <= now:
                    tick = nexts[t.id]
                    due.append(
                        NewEvent(
                            SCHEDULE_FIRED,
                            t.project,
                            t.id,
                            now,
                            {"trigger": t.id, "tick": tick},
                            key=f"schedule:{t.id}:{tick:.3f}",
                        )
                    )
                    nexts[t.id] = schedules.next_tick(t.config, max(now, tick), t.created_at)
            for gone in set(nexts) - set(current):
                del nexts[gone]
            if due:
                await asyncio.to_thread(self.bus.log.append, due)
                self.bus.wake(kinds={e.kind for e in due})
            wait = min((n - self._now() for n in nexts.values()), default=3600.0)
            try:
                await asyncio.wait_for(self._schedule_changed.wait(), max(0.0, min(wait, 3600.0)))
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ firing
    async def handle(self, events: list[Event]) -> None:
        """The bus consumer: call the function of every trigger each event matches (events
        fired from memory already: wait for that firing instead)."""
        mine = {ev.seq for ev in events if ev.seq in self._local}
        firing = {self._local.pop(seq) for seq in mine}
        last = events[-1].seq if events else 0
        for seq in [seq for seq in self._local if seq < last]:  # passed over: no trigger
            self._local.pop(seq)  # wants them any more (deleted meanwhile)
        if firing:
            await asyncio.gather(*firing)
        await self._fire_events([ev for ev in events if ev.seq not in mine])

    def kinds(self) -> set[str]:
        """The kinds of event the enabled triggers can match: the bus reads only those
        (asked at every wake: computed once per change of the triggers)."""
        if self._kinds is None:
            self._kinds = {k for t in self._triggers.values() if t.enabled for k in t.kinds()}
        return self._kinds

    def _deliver_local(self, events: list[Event]) -> None:
        """Fire the triggers of events just committed by this process, from memory."""
        if not events or self._loop is None:
            return
        task = self._loop.create_task(self._fire_events(events))
        for ev in events:
            self._local[ev.seq] = task

    async def _fire_events(self, events: list[Event]) -> None:
        firings = [(t, ev) for ev in events for t in list(self._triggers.values()) if t.matches(ev)]
        if not firings:
            return
        results = await asyncio.gather(*(self._fire(t, ev) for t, ev in firings))
        done = [(t, ev, err) for (t, ev), err in zip(firings, results, strict=True) if err != "dup"]
        if done:
            self._record_later(done)

    def _record_later(self, done: list[tuple[Trigger, Event, str | None]]) -> None:
        """Statistics of the triggers: batched, off the event path (at most 4 writes/s). A
        ``once`` trigger stops matching at once, in memory; the database follows."""
        once = {t.id for t, _, err in done if t.config.get("once") and err is None}
        if once:
            self._kinds = None
            self._triggers = {
                k: (replace(t, enabled=False) if k in once else t)
                for k, t in self._triggers.items()
            }
        self._firings.extend(done)
        if self._firings_due is None and self._loop is not None:
            self._firings_due = self._loop.call_later(0.25, self._flush_firings)

    def _flush_firings(self) -> None:
        self._firings_due = None
        batch, self._firings = self._firings, []
        if batch and self._loop is not None:
            self._loop.run_in_executor(None, self._record_firings, batch)

    async def _fire(self, trigger: Trigger, event: Event) -> str | None:
        """None: called; "dup": called before (a redelivery); else the error."""
        workflow = trigger.workflow is not None
        scope = Scope.SUBMIT if workflow else Scope.INVOKE
        if not await self._owner_may(trigger, scope):
            doing = "submit runs" if workflow else "invoke functions"
            return (
                f"the trigger's owner {trigger.created_by!r} may no longer {doing} in project "
                f"{trigger.project!r}: delete the trigger, or have a member of the project "
                "create it again"
            )
        if workflow:
            return await self._submit(trigger, event)
        try:
            fn = self.gateway.registry.get(trigger.project, trigger.function)
            args = dict(trigger.args)
            takes = fn.schema.get("properties", {})
            args.update(from_event(trigger, event, takes))
            self.gateway.registry.check_args(fn, args)
            wanted = new_id(16)
            inv = await self.gateway.invoke(
                fn,
                args,
                caller=f"trigger:{trigger.id}",
                source=f"event:{event.seq}",
                key=f"trigger:{trigger.id}:{event.seq}",
                invocation_id=wanted,
            )
            return None if inv.id == wanted else "dup"
        except HexflowError as exc:
            log.warning("trigger %s could not fire on event %d: %s", trigger.id, event.seq, exc)
            return exc.message

    async def _owner_may(self, trigger: Trigger, scope: Scope) -> bool:
        """Whether the trigger's creator still holds a role with ``scope`` (invoke for a
        function, submit for a workflow) in its project (roles read at most every
        ``OWNER_TTL`` seconds per creator and project). A trigger made by a function (its
        creator ``trigger:ID`` or ``function:ID``, never a user's name) acts for the call
        that made it, checked when that call was made."""
        if ":" in trigger.created_by:
            return True
        key = (trigger.created_by, trigger.project)
        now = time.monotonic()
        known = self._owners.get(key)
        if known is None or known[1] <= now:
            roles = await asyncio.to_thread(self._db.accounts.roles_of, trigger.created_by)
            known = self._owners[key] = (roles.get(trigger.project), now + OWNER_TTL)
        role = known[0]
        return role is not None and role_allows(role, scope)

    async def _submit(self, trigger: Trigger, event: Event) -> str | None:
        """A workflow trigger: its workflow as a run, params from the trigger and the event;
        the run's id derives from the trigger and the event, so a redelivery submits none."""
        assert trigger.workflow is not None
        try:
            if self.workflows is None:
                raise SpecError("this server cannot submit workflows from triggers")
            declared = self._declared.get(trigger.id)
            if declared is None:
                declared = self._declared[trigger.id] = await asyncio.to_thread(
                    self.workflows.params, trigger.project, trigger.workflow
                )
            values = {**trigger.args, **from_event(trigger, event, declared)}
            params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
            digest = hashlib.sha256(f"trigger:{trigger.id}:{event.seq}".encode()).hexdigest()
            submitted = await self.workflows.submit(trigger, event, params, f"t{digest[:15]}")
            return None if submitted else "dup"
        except HexflowError as exc:
            log.warning("trigger %s could not submit on event %d: %s", trigger.id, event.seq, exc)
            return exc.message

    def _record_firings(self, done: list[tuple[Trigger, Event, str | None]]) -> None:
        """One update per trigger: how many firings, the last one's time and error."""
        once: set[str] = set()
        summary: dict[str, tuple[Trigger, int, float, str | None, bool]] = {}
        for trigger, event, error in done:
            disable = bool(trigger.config.get("once")) and error is None
            _, count, last_at, last_error, disabled = summary.get(
                trigger.id, (trigger, 0, event.at, error, False)
            )
            if event.at >= last_at:
                last_at, last_error = event.at, error
            summary[trigger.id] = (trigger, count + 1, last_at, last_error, disabled or disable)
        with self._db.write() as conn:
            for trigger, count, at, error, disable in summary.values():
                triggers_sql.record_firing(
                    conn, trigger.id, at=at, error=error, disable=disable, count=count
                )
                if disable:
                    once.add(trigger.id)
                current = self._triggers.get(trigger.id)
                if current is not None:
                    current.fired += count
                    current.last_fired_at = at
                    current.last_error = error
        if once:
            found = {
                k: (replace(t, enabled=False) if k in once else t)
                for k, t in self._triggers.items()
            }
            self._set_all(found)

    def on_completion(
        self,
        project: str,
        *,
        trigger_id: str,
        run_id: str,
        function: str,
        args: dict[str, Any],
        user: str,
    ) -> Trigger:
        """A one-shot trigger: when run ``run_id`` ends, call ``function`` (idempotent by id)."""
        try:
            return self.create(
                project,
                name=f"on-completion-{run_id}",
                kind=TriggerKind.EVENT.value,
                function=function,
                config={"kinds": RUN_ENDED, "where": {"subject": run_id}, "once": True},
                args=args,
                user=user,
                trigger_id=trigger_id,
            )
        except Conflict:
            return self.get(trigger_id, [project])
