"""Cancellation: requests from other processes (polled from the store) and from this one.

A task in flight is killed by the executor and ends CANCELLED when its end is reported; a
queued or pending task ends CANCELLED at once; either way its dependents end
UPSTREAM_FAILED. Cancelling the run cancels every unfinished task.
"""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hexflow.model import TaskState

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine

S = TaskState


class CancelMixin:
    async def _poll_cancels(self: Engine) -> None:
        assert self.run_record is not None
        run_id = self.run_record.id
        while True:
            await asyncio.sleep(self._cancel_poll)
            requests = await asyncio.to_thread(self.store.pending_cancels, run_id)
            if requests:
                self._inbox.append(lambda reqs=requests: self._apply_cancels(reqs))
                self._wake()

    def _apply_cancels(self: Engine, requests: list[Any]) -> None:
        for req in requests:
            self._handled_cancels.append(req.id)
            if req.task_id is None:
                self.cancel_run()
            elif req.task_id in self.records:
                self.cancel_task(req.task_id)

    def cancel_run(self: Engine) -> None:
        assert self.run_record is not None
        self.run_record.cancel_requested = True
        self._run_dirty = True
        for rec in self.records.values():
            if not rec.state.terminal:
                self.cancel_task(rec.id)

    def cancel_task(self: Engine, task_id: str) -> None:
        rec = self.records[task_id]
        if rec.state.terminal:
            return
        if rec.join and rec.state is S.RUNNING:  # waiting for a spawned task
            rec.reason, rec.error = "cancelled", "cancelled by request"
            self._set(rec, S.CANCELLED)
            self._fail_dependents(rec)
            return
        if rec.state.in_flight:
            token = self._token_of.get(task_id)
            if token is not None and token not in self._cancel_tokens:
                self._cancel_tokens.add(token)
                executor = self._site_of_token(token).executor
                self._actions.append(lambda: executor.cancel(token, "cancelled"))
            return
        self._unqueue(task_id)
        self._waiting.pop(task_id, None)
        rec.reason = "cancelled"
        rec.error = "cancelled by request"
        self._set(rec, S.CANCELLED)
        self._fail_dependents(rec)
        self._wake()
