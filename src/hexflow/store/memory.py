"""MemoryStore: a complete in-process Store, for tests and throw-away runs.

It passes the same contract suite as SqlStore; it is a real implementation, not a mock.
Records are copied on the way in and out so callers never share state with the store.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from hexflow.errors import StoreError
from hexflow.model import RunRecord, TaskRecord
from hexflow.model.events import Event, NewEvent
from hexflow.store.base import CancelRequest
from hexflow.store.lookup import resolve_run_id, resolve_task


class MemoryStore:
    url = "memory://"

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._tasks: dict[str, dict[str, TaskRecord]] = {}
        self._cache: dict[str, tuple[str, str]] = {}
        self._cancels: list[tuple[CancelRequest, bool]] = []
        self._events: list[Event] = []
        self._event_keys: set[str] = set()
        self._lock = threading.Lock()

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> None:
        with self._lock:
            if run.id in self._runs:
                raise StoreError(f"run {run.id} already exists")
            self._check_new_tasks_locked(tasks, new_run=run.id)
            self._tasks[run.id] = {}
            self._save_locked([run], tasks, ())

    def save(
        self,
        *,
        runs: Sequence[RunRecord] = (),
        new_tasks: Sequence[TaskRecord] = (),
        tasks: Sequence[TaskRecord] = (),
        handled_cancels: Sequence[int] = (),
        events: Sequence[NewEvent] = (),
    ) -> None:
        with self._lock:
            # Check everything before changing anything: a failed save leaves no trace.
            for run in runs:
                if run.id not in self._runs:
                    raise StoreError(f"run {run.id} was never created")
            self._check_new_tasks_locked(new_tasks)
            for task in tasks:
                if task.spec.id not in self._tasks.get(task.run_id, {}):
                    raise StoreError(f"task {task.spec.id} of run {task.run_id} was never created")
            self._save_locked(runs, new_tasks, tasks)
            for i, (req, handled) in enumerate(self._cancels):
                if req.id in handled_cancels and not handled:
                    self._cancels[i] = (req, True)
            for ev in events:
                if ev.key is not None:
                    if ev.key in self._event_keys:
                        continue
                    self._event_keys.add(ev.key)
                seq = len(self._events) + 1
                self._events.append(
                    Event(seq, ev.kind, ev.project, ev.subject, ev.at, dict(ev.data), ev.key)
                )

    def _check_new_tasks_locked(
        self, new_tasks: Sequence[TaskRecord], new_run: str | None = None
    ) -> None:
        seen: set[tuple[str, str]] = set()
        for task in new_tasks:
            key = (task.run_id, task.spec.id)
            if task.run_id != new_run and task.run_id not in self._runs:
                raise StoreError(f"task {task.spec.id}: run {task.run_id} was never created")
            if key in seen or task.spec.id in self._tasks.get(task.run_id, {}):
                raise StoreError(f"task {task.spec.id} of run {task.run_id} already exists")
            seen.add(key)

    def _save_locked(
        self,
        runs: Sequence[RunRecord],
        new_tasks: Sequence[TaskRecord],
        tasks: Sequence[TaskRecord],
    ) -> None:
        for run in runs:
            self._runs[run.id] = replace(run, config=dict(run.config))
        for task in [*new_tasks, *tasks]:
            self._tasks.setdefault(task.run_id, {})[task.spec.id] = replace(task)
            if task.cache_key and task.state.value == "succeeded":
                self._cache.setdefault(task.cache_key, (task.run_id, task.spec.id))

    def claim_run(self, run_id: str, expected_owner: str | None, owner: str) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.owner != expected_owner:
                return False
            run.owner = owner
            return True

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            full = resolve_run_id(run_id, list(self._runs))
            return replace(self._runs[full], config=dict(self._runs[full].config))

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.created_at, reverse=True)
            return [replace(r, config=dict(r.config)) for r in runs[:limit]]

    def load_tasks(self, run_id: str) -> list[TaskRecord]:
        with self._lock:
            full = resolve_run_id(run_id, list(self._runs))
            return [replace(t) for t in self._tasks[full].values()]

    def get_task(self, run_id: str, task: str) -> TaskRecord:
        return resolve_task(run_id, task, self.load_tasks(run_id))

    def find_cached(self, cache_key: str) -> TaskRecord | None:
        with self._lock:
            where = self._cache.get(cache_key)
            return replace(self._tasks[where[0]][where[1]]) if where else None

    def request_cancel(self, run_id: str, task_id: str | None = None) -> int:
        with self._lock:
            full = resolve_run_id(run_id, list(self._runs))
            req = CancelRequest(id=len(self._cancels) + 1, run_id=full, task_id=task_id)
            self._cancels.append((req, False))
            return req.id

    def pending_cancels(self, run_id: str) -> list[CancelRequest]:
        with self._lock:
            return [r for r, handled in self._cancels if r.run_id == run_id and not handled]

    def events_after(self, after: int, limit: int = 500) -> list[Event]:
        with self._lock:
            return self._events[max(0, after) : max(0, after) + limit]

    def close(self) -> None:
        pass
