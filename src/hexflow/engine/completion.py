"""How a run ends in the engine: a failure's cascade to the tasks downstream
(``upstream_failed``, with the root cause), the run's final state once every task is
terminal, its state events, releasing it, and progress reports."""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from hexflow.engine.progress import Progress
from hexflow.model import RunRecord, RunState, TaskRecord, TaskState
from hexflow.model.events import RUN_PREFIX, NewEvent

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine

S = TaskState
_TERMINAL = frozenset(s for s in S if s.terminal)


class CompletionMixin:
    # set here, declared for the type checker (the Engine owns them)
    _run_dirty: bool
    _last_progress: float

    def _fail_dependents(self: Engine, root: TaskRecord) -> None:
        stack = list(self.dag.dependents(root.id))
        while stack:
            rec = self.records[stack.pop()]
            if rec.state is S.PENDING:
                self._upstream_failed(rec, root, cascade=False)
                stack.extend(self.dag.dependents(rec.id))

    def _upstream_failed(
        self: Engine, rec: TaskRecord, cause: TaskRecord, cascade: bool = True
    ) -> None:
        self._waiting.pop(rec.id, None)
        root = cause.root_cause or cause.id
        rec.root_cause = root
        rec.reason = "upstream_failed"
        root_rec = self.records.get(root, cause)
        rec.error = f"upstream task {root_rec.name!r} {root_rec.state.value}" + (
            f": {root_rec.error}" if root_rec.error else ""
        )
        self._set(rec, S.UPSTREAM_FAILED)
        if cascade:
            self._fail_dependents(rec)

    def _maybe_finish(self: Engine) -> None:
        assert self.run_record is not None and self._done is not None
        c = self._counts
        if any(n for s, n in c.items() if s not in _TERMINAL) or self._done.done():
            return
        run = self.run_record
        if run.cancel_requested:
            final = RunState.CANCELLED
        elif c.get(S.FAILED) or c.get(S.UPSTREAM_FAILED) or c.get(S.CANCELLED):
            final = RunState.FAILED
        else:
            final = RunState.SUCCEEDED
        run.set_state(final)
        run.ended_at = self._now()
        self._run_event(run)
        self._run_dirty = True
        self._flush()
        self._progress(force=True)
        self._done.set_result(run)

    def _run_event(self: Engine, run: RunRecord) -> None:
        self._events.append(
            NewEvent(
                RUN_PREFIX + run.state._value_,
                self._project,
                run.id,
                self._now(),
                {"run": run.id, "name": run.name},
            )
        )

    def _release(self: Engine) -> None:
        run = self.run_record
        if run is None:
            return
        try:
            run.owner = None
            self._run_dirty = True
            self._flush()
        except Exception:  # noqa: BLE001 - releasing is best effort; a dead owner is detected
            pass

    def _progress(self: Engine, force: bool = False) -> None:
        if self.on_progress is None or self.run_record is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < self._progress_interval:
            return
        self._last_progress = now
        self.on_progress(
            Progress(
                run_id=self.run_record.id,
                total=len(self.records),
                counts={s.value: n for s, n in self._counts.items()},
                elapsed=self._now() - self._started,
            )
        )


__all__ = ["CompletionMixin"]
