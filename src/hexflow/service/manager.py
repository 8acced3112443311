"""RunManager: drives the service's runs in this process, a few at a time.

Each run is persisted, owned by this process, in the request that submits it (before the
answer goes out; group-committed with other requests' runs through the service database's
``GroupWriter``), and driven on one of ``max_parallel`` daemon threads by an engine of its
own (``flow.runtime``), made when its drive starts, on the store that thread keeps: a
queued run holds no database connection, so thousands may wait in the queue, state
``pending``. On start, service runs whose owner process is dead (a crashed or stopped
server) are queued to resume: their finished tasks are never run again. The threads are
daemons: stopping the server abandons the runs in flight exactly as a crash would, and
the next start resumes them.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from hexflow.engine import Engine
from hexflow.engine.lease import owner_alive
from hexflow.engine.taskhooks import TaskHook
from hexflow.executors.local.executor import WarmLocalExecutor
from hexflow.flow import runtime
from hexflow.model import RunRecord, TaskRecord, TaskSpec
from hexflow.settings import Settings
from hexflow.store import MemoryStore, Store
from hexflow.store.group_commit import AuditRow, GroupWriter, KeyRow, Writes
from hexflow.store.service_db import ServiceDb

log = logging.getLogger("hexflow.service")

_Job = Callable[[], Any]
STORE_RUNS = 1000  # runs a driver thread's store serves before it is opened anew
_STOP = object()


class RunManager:
    def __init__(self, settings: Settings, writer: GroupWriter, *, max_parallel: int = 4) -> None:
        self.settings = settings
        self._writer = writer
        self.max_parallel = max(1, max_parallel)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._idle = threading.Condition(self._lock)
        self._started = False
        self._planning: Engine | None = None
        self._local = threading.local()  # each driver thread's store
        # the datasets of tasks, on the service's storage tiers (set by ``Service``)
        self.task_hook: TaskHook | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, db: ServiceDb | None = None) -> list[str]:
        """Start the driver threads; with ``db``, queue the runs a dead server left behind."""
        with self._lock:
            if self._started:
                return []
            self._started = True
        for i in range(self.max_parallel):
            thread = threading.Thread(target=self._work, name=f"hexflow-run-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        resumed: list[str] = []
        for run in db.runs.unfinished() if db is not None else []:
            if owner_alive(run.owner):
                continue  # driven by this or another live server
            self._enqueue(run.id, functools.partial(self._resume, run.id, run.workdir))
            resumed.append(run.id)
        if resumed:
            log.info("resuming %d run(s) left unfinished: %s", len(resumed), ", ".join(resumed))
        return resumed

    def stop(self) -> None:
        """Stop taking queued runs; runs being driven go on until the process exits."""
        with self._lock:
            started, self._started = self._started, False
        if started:
            for _ in self._threads:
                self._queue.put(_STOP)
            self._threads.clear()

    # ------------------------------------------------------------------ runs
    def create(
        self,
        name: str,
        specs: Sequence[TaskSpec],
        *,
        run_id: str,
        project: str,
        user: str,
        labels: dict[str, str] | None = None,
    ) -> RunRecord:
        """Persist a new run (owned by this process) and queue it; returns it as created.
        ``labels`` go into the run's config (the SFAPI facade marks its jobs with them)."""
        run, tasks = self.plan(
            name, specs, run_id=run_id, project=project, user=user, labels=labels
        )
        self.persist(run, tasks).result()
        return run

    def plan(
        self,
        name: str,
        specs: Sequence[TaskSpec],
        *,
        run_id: str,
        project: str,
        user: str,
        labels: dict[str, str] | None = None,
    ) -> tuple[RunRecord, list[TaskRecord]]:
        """A new run and its tasks, validated as the engine does (``Engine.plan_run``);
        nothing is stored (``persist``) and nothing is written: fine on the event loop.
        Its working directory is made when its drive starts."""
        workdir = self.settings.home / "work" / project / run_id
        return self._planner().plan_run(
            name,
            specs,
            workdir=str(workdir),
            run_id=run_id,
            config={
                **(labels or {}),
                "home": str(self.settings.home),
                "project": project,
                "submitted_by": user,
            },
        )

    def persist(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord],
        *,
        key: KeyRow | None = None,
        audit: Sequence[AuditRow] = (),
    ) -> Future[None]:
        """Group-commit a planned run with ``key`` (its Idempotency-Key: ``Conflict`` if
        stored already) and the ``audit`` rows of its request. Once committed, the run is
        queued, then the future completes. Wait with ``.result()``, or
        ``asyncio.wrap_future`` on an event loop."""
        stored = self._writer.submit(Writes(run=run, tasks=tasks, key=key, audit=audit))
        done: Future[None] = Future()

        def committed(outcome: Future[None]) -> None:  # on the writer thread
            error = outcome.exception()
            if error is None:
                self._enqueue(run.id, functools.partial(self._drive, run.id, run.workdir))
                done.set_result(None)
            else:
                done.set_exception(error)

        stored.add_done_callback(committed)
        return done

    def _planner(self) -> Engine:
        """The engine that validates new runs (``plan_run`` reads only its sites and their
        capacity; it never drives a run nor touches its store): one per manager."""
        with self._lock:
            if self._planning is None:
                self._planning = runtime.make_engine(self.settings, MemoryStore())
            return self._planning

    def cancel(self, run_id: str) -> dict[str, object]:
        """Cancel through the engine that drives (or will drive) the run, else in the store."""
        return runtime.cancel(self.settings, run_id)

    def cancel_task(self, run_id: str, task_id: str) -> dict[str, object]:
        """Cancel one task (its dependents end upstream_failed)."""
        return runtime.cancel(self.settings, run_id, task_id)

    def is_known(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._queued or run_id in self._active

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queued)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is queued or driven (tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._queued and not self._active, timeout)

    # ------------------------------------------------------------------ threads
    def _enqueue(self, run_id: str, job: _Job) -> None:
        with self._lock:
            self._queued.add(run_id)
        self._queue.put((run_id, job))

    def _work(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                run_id, job = item
                with self._lock:
                    self._queued.discard(run_id)
                    self._active.add(run_id)
                try:
                    job()
                except Exception:  # noqa: BLE001 - one run's failure must not stop the others
                    log.exception("run %s could not be driven", run_id)
                finally:
                    with self._idle:
                        self._active.discard(run_id)
                        self._idle.notify_all()
        finally:
            self._drop_store()
            self._drop_executor()

    def _drive(self, run_id: str, workdir: str) -> None:
        _make_workdir(workdir)
        store = self._thread_store()
        local = self._thread_executor()
        try:
            hook = self.task_hook
            engine = runtime.make_engine(self.settings, store, task_hook=hook, local=local)
            final = engine.run(run_id)
        except BaseException:
            self._drop_store()  # not trusted for the next run
            self._drop_executor()
            raise
        log.info("run %s ended %s", run_id, final.state.value)

    def _thread_executor(self) -> WarmLocalExecutor:
        """The local executor of this driver thread, its idle workers kept from one run to
        the next (a Python worker process started per run cost more CPU than a small run's
        own work); used when the settings name no site and no remote executor."""
        executor: WarmLocalExecutor | None = getattr(self._local, "executor", None)
        if executor is None:
            executor = runtime.local_executor(self.settings, WarmLocalExecutor)
            self._local.executor = executor
        return executor

    def _drop_executor(self) -> None:
        executor = getattr(self._local, "executor", None)
        if executor is not None:
            self._local.executor = None
            executor.close()

    def _thread_store(self) -> Store:
        """The store of this driver thread: opened at its first run and kept for the next
        ones (its pool and statement cache warm: a store per run cost more CPU than the
        run's own bookkeeping), opened anew every ``STORE_RUNS`` runs, which bounds what it
        remembers per run."""
        local = self._local
        if getattr(local, "store", None) is None or local.served >= STORE_RUNS:
            self._drop_store()
            local.store, local.served = runtime.make_store(self.settings), 0
        local.served += 1
        store: Store = local.store
        return store

    def _drop_store(self) -> None:
        store = getattr(self._local, "store", None)
        if store is not None:
            self._local.store = None
            store.close()

    def _resume(self, run_id: str, workdir: str) -> None:
        _make_workdir(workdir)  # a run may be resumed before it ever started
        final, _ = runtime.resume_run(self.settings, run_id, on_progress=_quiet)
        log.info("run %s (resumed) ended %s", run_id, final.state.value)


def _quiet(_progress: Any) -> None:
    return None


def _make_workdir(path: str) -> None:
    """The run's working directory, made by its driver thread, not in the request that
    submits it (a directory made per request costs more than its database rows)."""
    Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)
