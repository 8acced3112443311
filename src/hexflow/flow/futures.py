"""TaskFuture: the handle a task call returns; passing it to another task makes a dependency.

After the run, ``result()`` returns the task's value or raises: the task's own exception
(with the remote traceback attached as a note) for a Python error, ``TaskFailed`` for
everything else (exit code, timeout, upstream failure, cancel).
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from hexflow.errors import HexflowError, TaskFailed
from hexflow.model import TaskRecord, TaskState

if TYPE_CHECKING:
    from hexflow.flow.workflow import Workflow


class TaskFuture:
    __slots__ = ("workflow", "task_id", "name")
    _hexflow_future = True  # how a worker recognises a returned future (a join)

    def __init__(self, workflow: Workflow, task_id: str, name: str) -> None:
        self.workflow = workflow
        self.task_id = task_id
        self.name = name

    def __repr__(self) -> str:
        return f"<TaskFuture {self.task_id} {self.state}>"

    @property
    def record(self) -> TaskRecord | None:
        return self.workflow.task_record(self.task_id)

    def _remote(self) -> Any:
        """The server's handle of this task, when its workflow was submitted to one."""
        run = self.workflow.remote
        return run.future(self.task_id) if run is not None else None

    @property
    def state(self) -> str:
        remote = self._remote()
        if remote is not None:
            return str(remote.state)
        rec = self.record
        return rec.state.value if rec else "unsubmitted"

    def done(self) -> bool:
        remote = self._remote()
        if remote is not None:
            return bool(remote.done())
        rec = self.record
        return bool(rec and rec.state.terminal)

    def result(self, timeout: float | None = None) -> Any:
        """The task's value. Embedded: after ``wf.run()``. Submitted to a server
        (``wf.submit(client)``): waits for the task there, ``timeout`` seconds at most."""
        remote = self._remote()
        if remote is not None:
            return remote.result(timeout)
        rec = self.record
        if rec is None or not rec.state.terminal:
            raise HexflowError(
                f"task {self.name!r} has no result yet (state: {self.state})",
                hint="call wf.run() first; results are ready when it returns",
            )
        if rec.state is TaskState.SUCCEEDED:
            return pickle.loads(rec.result) if rec.result else None
        raise self._error(rec)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        remote = self._remote()
        if remote is not None:
            exc: BaseException | None = remote.exception(timeout)
            return exc
        rec = self.record
        if rec is None or not rec.state.terminal or rec.state is TaskState.SUCCEEDED:
            return None
        return self._error(rec)

    def _error(self, rec: TaskRecord) -> BaseException:
        if rec.reason == "error" and rec.result:
            try:
                exc = pickle.loads(rec.result)
                if isinstance(exc, BaseException):
                    exc.add_note(
                        f"hexflow: raised by task {rec.name!r} (attempt {rec.attempt}); "
                        f"remote traceback:\n{rec.traceback or ''}"
                    )
                    return exc
            except Exception:  # noqa: BLE001 - fall back to TaskFailed below
                pass
        return TaskFailed(
            f"task {rec.name!r} {rec.state.value}: {rec.error or rec.reason}",
            hint=_hint(rec),
            task=rec.id,
            reason=rec.reason,
            exit_code=rec.exit_code,
            traceback=rec.traceback,
            root_cause=rec.root_cause,
        )


def _hint(rec: TaskRecord) -> str | None:
    if rec.reason in ("timeout", "walltime"):
        return f"raise the task's {rec.reason}, or give it checkpoint=True and retries"
    if rec.reason == "upstream_failed":
        return f"fix task {rec.root_cause!r} first; `hexflow logs RUN {rec.root_cause}` shows why"
    if rec.reason in ("exit_code", "error"):
        return f"`hexflow logs {rec.run_id} {rec.id}` shows its output"
    return None
