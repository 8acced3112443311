"""Spawned tasks and joins: the DAG growing from inside running tasks.

Specs a task created while it ran are added in the turn that records its end (a bad batch
fails the parent). A parent that returned a spawned future stays RUNNING, holding no
resources, until that task ends; then it takes its result or its failure.
"""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from hexflow.errors import SpecError
from hexflow.executors.base import TaskEnded
from hexflow.model import TaskRecord, TaskState

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine

S = TaskState


class JoinMixin:
    def _resolve_joins(self: Engine, target: TaskRecord) -> None:
        """A spawned task ended: the tasks that returned its future end the same way."""
        for parent_id in self._joins.pop(target.id, ()):
            parent = self.records[parent_id]
            if parent.state is not S.RUNNING:
                continue  # cancelled while it waited
            parent.ended_at = target.ended_at or self._now()
            if target.state is S.SUCCEEDED:
                parent.result = target.result
                self._succeeded(parent)
                continue
            parent.reason = "upstream_failed"
            parent.root_cause = target.root_cause or target.id
            parent.error = f"spawned task {target.name!r} {target.state.value}" + (
                f": {target.error}" if target.error else ""
            )
            self._set(parent, S.FAILED)
            self._fail_dependents(parent)

    def _spawn(self: Engine, parent: TaskRecord, event: TaskEnded) -> bool:
        """Add the tasks ``parent`` created while it ran; a bad batch fails the parent."""
        assert event.spawned is not None
        specs = pickle.loads(event.spawned)  # written by our own worker, not by a user
        # A parent run again (retry, resume --retry-failed) spawns the same ids again: the
        # children it already has are adopted as they are.
        mine = parent.id + "."
        specs = [s for s in specs if not (s.id in self.dag and s.id.startswith(mine))]
        try:
            self._grow(specs)
        except SpecError as exc:
            parent.reason = "error"
            parent.error = f"the tasks it spawned were rejected: {exc}"
            self._set(parent, S.FAILED)
            self._fail_dependents(parent)
            return False
        return True
