"""Preemption and admission: applying the policy's ``Preempt`` and ``Reject`` decisions.

A preempted task gets the policy's grace period (``PolicyConfig.preempt_grace``): a shell
command receives SIGTERM, a Python task a preemption notice
(``hexflow.preemption_requested()`` turns true); either is stopped when the grace ends.
Whatever way it stops, it is requeued READY with ``preemptions`` counted — never lost, and
not charged against its retries — and resumes from its checkpoint directory when it has
one. A task that finishes within the grace simply succeeds. A rejected task (a deadline it
cannot meet) fails at once with the policy's reason; its dependents fail upstream.
"""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

from typing import TYPE_CHECKING

from hexflow.executors.base import TaskEnded
from hexflow.model import TaskRecord, TaskState
from hexflow.scheduler.decisions import Preempt, Reject

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine

S = TaskState


class PreemptMixin:
    def _preempt(self: Engine, decision: Preempt) -> None:
        token = self._token_of.get(decision.task_id)
        if token is None or token in self._preempt_tokens or token in self._cancel_tokens:
            return
        self._preempt_tokens.add(token)
        grace = self.policy.preempt_grace
        executor = self._site_of_token(token).executor
        self._actions.append(lambda: executor.preempt(token, grace))

    def _requeue_preempted(self: Engine, rec: TaskRecord, event: TaskEnded) -> None:
        rec.preemptions += 1
        if event.reason == "pilot_lost":  # its pilot died or its allocation ended
            rec.reason = "pilot_lost"
            rec.error = f"{event.error or 'its pilot was lost'} (attempt {rec.attempt})"
        else:
            rec.reason = "preempted"
            rec.error = f"preempted (attempt {rec.attempt}); requeued" + (
                f": {event.error}" if event.error and event.reason != "preempted" else ""
            )
        rec.traceback = None
        self._set(rec, S.READY)
        self._enqueue(rec)

    def _reject(self: Engine, decision: Reject) -> None:
        rec = self.records[decision.task_id]
        self._at.pop(rec.id, None)  # the placement has forgotten it
        if rec.state is not S.READY:
            return
        rec.reason = "rejected"
        rec.error = decision.reason
        self._set(rec, S.FAILED)
        self._fail_dependents(rec)
