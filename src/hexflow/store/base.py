"""The Store interface: how runs and tasks persist, whatever the backend.

Contract (tested against every backend by tests/store_contract.py):
- ``save`` writes a batch of run and task changes atomically (one transaction): the
  engine's group commit. Nothing is acted on before ``save`` returns.
- ``save(events=...)`` logs the events in that same transaction (numbered in commit
  order): an event is logged if and only if the changes it reports are persisted.
- Records read back are copies: mutating them does not change the store.
- Run ids may be given by unique prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hexflow.model import RunRecord, TaskRecord
from hexflow.model.events import Event, NewEvent


@dataclass(frozen=True, slots=True)
class CancelRequest:
    id: int
    run_id: str
    task_id: str | None  # None: cancel the whole run


class Store(Protocol):
    url: str

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> None: ...

    def save(
        self,
        *,
        runs: Sequence[RunRecord] = (),
        new_tasks: Sequence[TaskRecord] = (),
        tasks: Sequence[TaskRecord] = (),
        handled_cancels: Sequence[int] = (),
        events: Sequence[NewEvent] = (),
    ) -> None: ...

    def claim_run(self, run_id: str, expected_owner: str | None, owner: str) -> bool:
        """Set the run's owner to ``owner`` if it is still ``expected_owner`` (atomic)."""
        ...

    def get_run(self, run_id: str) -> RunRecord: ...

    def list_runs(self, limit: int = 50) -> list[RunRecord]: ...

    def load_tasks(self, run_id: str) -> list[TaskRecord]: ...

    def get_task(self, run_id: str, task: str) -> TaskRecord: ...

    def find_cached(self, cache_key: str) -> TaskRecord | None: ...

    def request_cancel(self, run_id: str, task_id: str | None = None) -> int: ...

    def pending_cancels(self, run_id: str) -> list[CancelRequest]: ...

    def events_after(self, after: int, limit: int = 500) -> list[Event]:
        """Logged events with ``seq > after``, oldest first."""
        ...

    def close(self) -> None: ...
