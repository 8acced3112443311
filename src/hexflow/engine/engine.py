"""Engine: drives one run to completion — events in, checked transitions, group commit,
then actions out.

Each event-loop turn (1) applies executor events and timers through the task state
machine, (2) asks the scheduler which ready tasks start, (3) persists every change of the
turn in one store transaction, and only then (4) launches or kills work. A crash at any
point therefore loses nothing that was acted on: on ``resume`` the engine reloads the
store, requeues the tasks that were in flight, and never re-runs a recorded success.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from hexflow.engine.cache import cache_key
from hexflow.engine.cancel import CancelMixin
from hexflow.engine.completion import CompletionMixin
from hexflow.engine.joins import JoinMixin
from hexflow.engine.lease import my_owner_id
from hexflow.engine.loading import LoadMixin
from hexflow.engine.paths import RunPaths, run_home
from hexflow.engine.placement import absolute_deadline
from hexflow.engine.preempt import PreemptMixin
from hexflow.engine.progress import ProgressFn
from hexflow.engine.sites import SITE_FAILURES, SiteMixin, SiteRuntime, SiteSet
from hexflow.engine.taskhooks import TaskHook, TaskHookMixin
from hexflow.executors.base import Executor, ExecutorEvent, Launch, TaskEnded, TaskStarted
from hexflow.model import (
    RunRecord,
    TaskKind,
    TaskRecord,
    TaskSpec,
    TaskState,
    WorkflowDAG,
)
from hexflow.model.events import TASK_PREFIX, NewEvent
from hexflow.scheduler.decisions import PolicyConfig, Preempt, Reject, Start
from hexflow.store import Store

S = TaskState

# Reasons after which a retry makes no sense.
_NO_RETRY = {"cancelled", "launch_failed"}
# Ends that requeue the task as it was, whatever its retries: the work was stopped from outside.
_REQUEUED = frozenset({"preempted", "pilot_lost"})


class Engine(
    CancelMixin,
    CompletionMixin,
    JoinMixin,
    LoadMixin,
    PreemptMixin,
    SiteMixin,
    TaskHookMixin,
):
    def __init__(
        self,
        store: Store,
        executor: Executor,
        *,
        wallclock: Callable[[], float] = time.time,
        on_progress: ProgressFn | None = None,
        progress_interval: float = 0.1,
        cancel_poll_interval: float = 0.5,
        policy: PolicyConfig | None = None,
        sites: SiteSet | None = None,
        task_hook: TaskHook | None = None,
    ) -> None:
        """``executor`` runs every task; or, with ``sites``, each site's executor runs the
        tasks placed there (``executor`` is then the first site's). ``task_hook`` stages
        and registers the datasets of tasks that declare some (``engine.taskhooks``)."""
        self.store = store
        self.task_hook = task_hook
        self.site_set = sites or SiteSet.single(executor)
        self.executor = self.site_set.bindings[0].executor
        self._now = wallclock
        self.on_progress = on_progress
        self._progress_interval = progress_interval
        self._cancel_poll = cancel_poll_interval
        self.policy = policy or PolicyConfig()
        # (run, records, DAG) of the run create_run has just persisted, until it is driven
        self._created: tuple[RunRecord, list[TaskRecord], WorkflowDAG] | None = None
        self._claimed: RunRecord | None = None  # that run as stored (owned by this process)
        self._reset()

    def _reset(self) -> None:
        self.run_record: RunRecord | None = None
        self.records: dict[str, TaskRecord] = {}
        self.dag = WorkflowDAG()
        self._waiting: dict[str, int] = {}
        self._site_list = [SiteRuntime.of(b, self.policy) for b in self.site_set.bindings]
        self._sites = {site.name: site for site in self._site_list}
        # the one site, when there is nothing to choose (no routing on the hot path)
        self._only_site = self._site_list[0] if len(self._site_list) == 1 else None
        self._placement = self._site_list[0].placement  # the first site's (queue view)
        self._at: dict[str, SiteRuntime] = {}  # task -> the site it is queued or runs at
        self._token_site: dict[int, SiteRuntime] = {}
        self._parked: dict[str, str] = {}  # ready tasks no site can take now -> why
        self._moving: dict[int, str] = {}  # token -> why its site is stopping it (a move)
        self._site_checks: set[asyncio.Task[None]] = set()
        self._preempt_tokens: set[int] = set()
        self._tokens: dict[int, str] = {}
        self._token_of: dict[str, int] = {}
        self._next_token = 0
        self._inbox: deque[Any] = deque()
        self._dirty: dict[str, TaskRecord] = {}
        self._new: list[TaskRecord] = []
        self._run_dirty = False
        self._events: list[NewEvent] = []  # state changes of this turn, logged with them
        self._project: str | None = None
        self._actions: list[Callable[[], None]] = []
        self._handled_cancels: list[int] = []
        self._cancel_tokens: set[int] = set()
        self._turn_scheduled = False
        self._counts: dict[TaskState, int] = {}
        self._joins: dict[str, list[str]] = {}  # spawned task -> tasks waiting for its result
        self._timers: list[asyncio.TimerHandle] = []
        self._last_progress = 0.0
        self._started = 0.0
        self._done: asyncio.Future[RunRecord] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- entry points
    def create_run(
        self,
        name: str,
        specs: Iterable[TaskSpec],
        *,
        workdir: str,
        run_id: str,
        config: dict[str, Any],
    ) -> RunRecord:
        """Validate the DAG and persist the run with all its tasks, for this engine to drive.

        Tasks without dependencies are created READY, the others PENDING. The run is
        created owned by this process, so that another process cancels it through a
        request that the driving engine sees (not behind its back), and cannot resume it
        meanwhile. ``run``/``drive`` of the same run then take these records as they are
        instead of reading them back; if they cannot start it, they give up the ownership.
        """
        run, records, dag = self._plan(name, specs, workdir, run_id, config)
        self.store.create_run(run, records)
        # The engine's own copy of the run: the caller's record stays as created.
        self._created = (replace(run, config=dict(config)), records, dag)
        self._claimed = replace(run, config=dict(config))  # as stored, until driven
        return run

    def plan_run(
        self,
        name: str,
        specs: Iterable[TaskSpec],
        *,
        workdir: str,
        run_id: str,
        config: dict[str, Any],
    ) -> tuple[RunRecord, list[TaskRecord]]:
        """The records ``create_run`` would persist, validated the same way, persisting
        nothing: for a caller that writes them itself (the service's group commit). An
        engine then drives the run by id, as one created by another engine."""
        run, records, _ = self._plan(name, specs, workdir, run_id, config)
        return run, records

    def _plan(
        self,
        name: str,
        specs: Iterable[TaskSpec],
        workdir: str,
        run_id: str,
        config: dict[str, Any],
    ) -> tuple[RunRecord, list[TaskRecord], WorkflowDAG]:
        dag = WorkflowDAG()
        specs = list(specs)
        dag.add_many(specs)
        project = config.get("project")
        self._check_fits(specs, project if isinstance(project, str) else None)
        run = RunRecord(
            id=run_id,
            name=name,
            created_at=self._now(),
            workdir=workdir,
            owner=my_owner_id(),
            config=config,
        )
        records = [
            TaskRecord(run_id=run_id, spec=s, state=S.PENDING if s.deps else S.READY) for s in specs
        ]
        return run, records, dag

    def run(self, run_id: str, *, retry_failed: bool = False) -> RunRecord:
        """Drive ``run_id`` to completion in this thread (the sync facade)."""
        return asyncio.run(self.drive(run_id, retry_failed=retry_failed))

    async def drive(self, run_id: str, *, retry_failed: bool = False) -> RunRecord:
        self._reset()
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        try:
            # Start the executors first: their workers boot while the run is loaded.
            started: list[Executor] = []
            try:
                for site in self._site_list:
                    site.executor.start(self._loop, self._report)
                    started.append(site.executor)
                self._load(run_id, retry_failed)
                assert self.run_record is not None
                self.paths = RunPaths(
                    run_home(self.run_record.workdir, self.run_record.config), self.run_record.id
                )
                self.paths.create()
            except BaseException:
                for executor in started:
                    executor.shutdown()
                raise
        except BaseException:
            self._disown(run_id)
            raise
        self._claimed = None  # from now on, _release() gives the run up when the drive ends
        pollers = [self._loop.create_task(self._poll_cancels())]
        try:
            if self._only_site is None or self.site_set.observer is not None:
                observer = self.site_set.observer
                if observer is not None:  # where the sites stand, before placing anything
                    self._apply_site_states(await self._observe_sites())
                pollers.append(self._loop.create_task(self._watch_sites()))
            self._wake()
            return await self._done
        finally:
            for poller in [*pollers, *self._site_checks]:
                poller.cancel()
            for timer in self._timers:
                timer.cancel()
            for site in self._site_list:
                site.executor.shutdown()
            self._release()

    def _disown(self, run_id: str) -> None:
        """The run create_run claimed could not be started: store it unowned, as created."""
        claimed, self._claimed = self._claimed, None
        if claimed is None or claimed.id != run_id:
            return
        claimed.owner = None
        try:
            self.store.save(runs=[claimed])
        except Exception:  # noqa: BLE001 - best effort, as _release; a dead owner is detected
            pass

    def add_tasks(self, specs: Iterable[TaskSpec]) -> None:
        """Grow the running DAG (call from the engine's loop). Atomic: all or nothing."""
        self._grow(list(specs))
        self._wake()

    def _note_gangs(self, specs: Iterable[TaskSpec]) -> None:
        """Tell placement how many tasks each gang has (a gang starts only when whole)."""
        for spec in specs:
            if spec.gang is not None:
                for site in self._site_list:
                    gangs = site.placement.gangs
                    gangs[spec.gang] = gangs.get(spec.gang, 0) + 1

    def _grow(self, specs: list[TaskSpec]) -> None:
        assert self.run_record is not None
        self._check_fits(specs, self._project)  # before the DAG changes: all or nothing
        self.dag.add_many(specs)
        self._note_gangs(specs)
        for spec in specs:
            rec = TaskRecord(run_id=self.run_record.id, spec=spec)
            self.records[spec.id] = rec
            self._new.append(rec)
            self._count(None, rec.state)
            self._settle_pending(rec)

    # ---------------------------------------------------------------- the loop turn
    def _report(self, event: ExecutorEvent) -> None:
        if isinstance(event, TaskStarted) and not event.persist:
            # bookkeeping only (which worker runs the task): no state change, nothing to
            # persist, so it needs no loop turn of its own
            self._on_started(event)
            return
        self._inbox.append(event)
        self._wake()

    def _wake(self) -> None:
        if not self._turn_scheduled and self._loop is not None:
            self._turn_scheduled = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._turn_scheduled = False
        try:
            inbox = self._inbox
            while inbox:
                event = inbox.popleft()
                if isinstance(event, TaskEnded):
                    self._on_ended(event)
                elif isinstance(event, TaskStarted):
                    self._on_started(event)
                else:
                    event()
            self._schedule()
            self._flush()
            actions, self._actions = self._actions, []
            for action in actions:
                action()
            self._maybe_finish()
            self._progress()
        except BaseException as exc:  # noqa: BLE001 - surface to drive()
            if self._done is not None and not self._done.done():
                self._done.set_exception(exc)

    def _flush(self) -> None:
        if not (
            self._dirty or self._new or self._run_dirty or self._handled_cancels or self._events
        ):
            return
        new_ids = {r.id for r in self._new}
        self.store.save(
            runs=[self.run_record] if self._run_dirty and self.run_record else (),
            new_tasks=self._new,
            tasks=[r for k, r in self._dirty.items() if k not in new_ids],
            handled_cancels=self._handled_cancels,
            events=self._events,
        )
        self._dirty = {}
        self._new = []
        self._run_dirty = False
        self._handled_cancels = []
        self._events = []

    # ---------------------------------------------------------------- transitions
    def _set(self, rec: TaskRecord, state: TaskState) -> None:
        old = rec.state
        rec.set_state(state)
        self._count(old, state)
        self._dirty[rec.id] = rec
        # The event bus's record of the change, written in the same group commit.
        data: dict[str, Any] = {"run": rec.run_id, "task": rec.id, "attempt": rec.attempt}
        if rec.reason is not None and state is not S.SUCCEEDED:
            data["reason"] = rec.reason
        self._events.append(
            NewEvent(
                TASK_PREFIX + state._value_,
                self._project,
                f"{rec.run_id}/{rec.id}",
                self._now(),
                data,
            )
        )
        if self._joins and state.terminal and rec.id in self._joins:
            self._resolve_joins(rec)

    def _count(self, old: TaskState | None, new: TaskState) -> None:
        c = self._counts
        if old is not None:
            c[old] -= 1
        c[new] = c.get(new, 0) + 1

    def _make_ready(self, rec: TaskRecord) -> None:
        self._waiting.pop(rec.id, None)
        if rec.state is not S.READY:
            self._set(rec, S.READY)
        self._enqueue(rec)

    def _enqueue(self, rec: TaskRecord) -> None:
        site = self._only_site or self._route(rec)
        if site is not None:  # else it waits for a site (``_parked``)
            self._place(rec, site)

    def _place(self, rec: TaskRecord, site: SiteRuntime) -> None:
        spec = rec.spec
        started = self.run_record.started_at if self.run_record else None
        deadline = absolute_deadline(started, spec.deadline)
        self._at[rec.id] = site
        rec.site = site.name
        site.placement.push(rec.id, spec, self._now(), deadline)

    def _schedule(self) -> None:
        """One pass of the facility policy over the front of each site's queue; apply it."""
        for site in self._site_list:
            placement = site.placement
            if not placement.worth_a_pass():
                continue
            now = self._now()
            progressed = False
            for decision in placement.decide(now):
                if isinstance(decision, Start):
                    self._start(self.records[decision.task_id], now, site)
                    progressed = True
                elif isinstance(decision, Preempt):
                    self._preempt(decision)
                elif isinstance(decision, Reject):
                    self._reject(decision)
                # Reserve: the task waits for its nodes; `hexflow queue` says why
            if progressed and placement.worth_a_pass():
                self._wake()  # the window was used up, or a cache hit left room: go on

    def _start(self, rec: TaskRecord, now: float, site: SiteRuntime) -> None:
        if rec.state is not S.READY:  # cancelled while queued
            site.placement.ended(rec.id)
            self._at.pop(rec.id, None)
            return
        inputs = {d: self.records[d].result or b"" for d in rec.spec.inputs}
        if rec.spec.cache:
            rec.cache_key = cache_key(rec.spec, inputs)
            hit = self.store.find_cached(rec.cache_key)
            if hit is not None:
                rec.result = hit.result
                rec.cached = True
                rec.started_at = rec.ended_at = now
                site.placement.ended(rec.id)  # it holds nothing
                self._at.pop(rec.id, None)
                self._succeeded(rec)
                return
        rec.attempt += 1
        rec.submitted_at = rec.started_at = now
        rec.ended_at = None
        self._set(rec, S.RUNNING)
        self._actions.append(self._launcher(rec, inputs, site))

    def _launcher(
        self, rec: TaskRecord, inputs: dict[str, bytes], site: SiteRuntime
    ) -> Callable[[], None]:
        self._next_token += 1
        token = self._next_token
        self._tokens[token] = rec.id
        self._token_of[rec.id] = token
        self._token_site[token] = site
        site.running.add(token)
        assert self.run_record is not None
        spec = rec.spec
        env = {
            "HEXFLOW_RUN_ID": rec.run_id,
            "HEXFLOW_TASK_ID": spec.id,
            "HEXFLOW_ATTEMPT": str(rec.attempt),
            "HEXFLOW_SITE": site.name,
            **spec.env,
        }
        if spec.checkpoint:
            ckpt = self.paths.checkpoint(spec.id)
            ckpt.mkdir(parents=True, exist_ok=True)
            env["HEXFLOW_CHECKPOINT_DIR"] = str(ckpt)
        stdout, stderr = self.paths.log_files(spec.id, rec.attempt)
        launch = Launch(
            token=token,
            run_id=rec.run_id,
            spec=spec,
            attempt=rec.attempt,
            inputs=inputs if spec.kind is not TaskKind.SHELL else {},
            env=env,
            cwd=os.path.join(self.run_record.workdir, spec.cwd or ""),  # relative to the run
            stdout=stdout,
            stderr=stderr,
            workdir=self.run_record.workdir,
        )
        return self._staging(rec, launch, lambda ready: self._submit(ready, site.executor))

    def _submit(self, launch: Launch, executor: Executor) -> None:
        try:
            executor.submit(launch)
        except Exception as exc:  # noqa: BLE001 - that task fails; the run goes on
            self._report(
                TaskEnded(
                    launch.token,
                    ok=False,
                    ended_at=self._now(),
                    reason="launch_failed",
                    error=f"the {executor.name} executor could not start it: "
                    f"{type(exc).__name__}: {exc}",
                    retryable=False,
                )
            )

    def _on_started(self, event: TaskStarted) -> None:
        task_id = self._tokens.get(event.token)
        if task_id is not None:
            rec = self.records[task_id]
            rec.worker = event.worker
            if event.persist:  # a process that would outlive us: record it for resume
                self._dirty[task_id] = rec

    def _on_ended(self, event: TaskEnded) -> None:
        if (
            event.reason in SITE_FAILURES
            and self.site_set.observer is not None
            and event.token in self._token_site
            and not event.extra.get("site_checked")
        ):  # did the site fail? Ask first: then the task moves instead of failing
            event.extra["site_checked"] = True
            self._check_site_then(self._token_site[event.token], event)
            return
        task_id = self._tokens.pop(event.token, None)
        if task_id is None:
            return
        self._token_of.pop(task_id, None)
        rec = self.records[task_id]
        site = self._token_site.pop(event.token, None) or self._site_list[0]
        site.running.discard(event.token)
        site.placement.ended(task_id)
        self._at.pop(task_id, None)
        rec.ended_at = event.ended_at
        rec.exit_code = event.exit_code
        if "image" in event.extra:  # a container task: what ran, for provenance
            rec.image = str(event.extra["image"])
            digest = event.extra.get("image_digest")
            rec.image_digest = str(digest) if digest else None
        cancelled = event.token in self._cancel_tokens
        self._cancel_tokens.discard(event.token)
        asked = event.token in self._preempt_tokens
        self._preempt_tokens.discard(event.token)
        moving = self._moving.pop(event.token, None)
        if moving is not None and not (event.ok or cancelled):  # its site went down
            self._move(rec, site, moving, attempt=rec.attempt)
            return
        # preempted at the policy's request, by a batch system on its own (Slurm), or its
        # pilot was lost: requeued, not charged as a retry
        if (asked or event.reason in _REQUEUED) and not (event.ok or cancelled):
            self._requeue_preempted(rec, event)
            return
        if event.ok and not cancelled:
            rec.reason = rec.error = rec.traceback = None
            if event.spawned and not self._spawn(rec, event):
                return
            if event.join:  # the result is the spawned task's: wait for it, still RUNNING
                rec.join = event.join
                self._dirty[rec.id] = rec
                self._joins.setdefault(event.join, []).append(rec.id)
                target = self.records[event.join]
                if target.state.terminal:  # an adopted child that had already ended
                    self._resolve_joins(target)
                return
            if self._outputs_pending(rec, event.result):  # registered first, then succeeded
                return
            rec.result = event.result
            self._succeeded(rec)
            return
        rec.reason = "cancelled" if cancelled else event.reason
        rec.error = event.error
        rec.traceback = event.traceback
        rec.result = event.result  # the pickled exception of a Python task, if any
        if cancelled or rec.reason == "cancelled":
            self._set(rec, S.CANCELLED)
            self._fail_dependents(rec)
        elif (
            event.retryable
            and rec.reason not in _NO_RETRY
            and rec.attempt - rec.preemptions <= rec.spec.retry.retries
        ):
            delay = rec.spec.retry.delay(rec.attempt)
            rec.retry_at = self._now() + delay
            self._set(rec, S.RETRYING)
            self._after(delay, self._retry_due, rec.id)
        else:
            self._set(rec, S.FAILED)
            self._fail_dependents(rec)

    def _after(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        """A timer of this drive: cancelled when the drive ends, so none fires later."""
        assert self._loop is not None
        self._timers.append(self._loop.call_later(delay, callback, *args))

    def _retry_due(self, task_id: str) -> None:
        def apply() -> None:
            rec = self.records[task_id]
            if rec.state is S.RETRYING:
                rec.retry_at = None
                self._make_ready(rec)

        self._inbox.append(apply)
        self._wake()

    def _succeeded(self, rec: TaskRecord) -> None:
        self._set(rec, S.SUCCEEDED)
        waiting = self._waiting
        records = self.records
        for child in self.dag.dependents(rec.id):
            left = waiting.get(child)
            if left is None:
                continue
            if left == 1:
                self._make_ready(records[child])
            else:
                waiting[child] = left - 1
