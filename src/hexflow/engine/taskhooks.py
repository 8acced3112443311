"""Hooks around a task's start and its successful end: a ``TaskHook`` (the data layer's
``hexflow.data.taskdata.TaskData``) stages what a task reads before it is launched, and
registers what it wrote before it counts as succeeded.

Both run on a worker thread, off the engine's loop; the task is RUNNING all the while, so
a crash between them redoes the task, never half of it. A staging failure ends the attempt
like a failed launch (retried when the error says it may pass); a registration failure
fails the task (reason ``outputs_failed``) and its dependents.
"""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hexflow.executors.base import Launch, TaskEnded
from hexflow.model import RunRecord, TaskRecord, TaskSpec, TaskState

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine


class TaskHook(Protocol):
    def wants(self, spec: TaskSpec) -> bool:
        """Whether this task needs the hook at all (pure, called on the loop)."""
        ...

    def before_start(self, run: RunRecord, rec: TaskRecord) -> Mapping[str, str]:
        """Prepare the attempt; the environment variables to add to the task's."""
        ...

    def after_success(self, run: RunRecord, rec: TaskRecord) -> None:
        """The attempt succeeded: act on what it left (raise to fail the task)."""
        ...


class TaskHookMixin:
    task_hook: TaskHook | None = None

    def _staging(
        self: Engine, rec: TaskRecord, launch: Launch, submit: Callable[[Launch], None]
    ) -> Callable[[], None]:
        """The action that launches ``rec``: ``submit`` now, or once its hook has staged."""
        hook = self.task_hook
        if hook is None or not hook.wants(rec.spec):
            return lambda: submit(launch)
        run = self.run_record
        assert run is not None and self._loop is not None
        loop = self._loop

        def staged(future: Any) -> None:
            try:
                env = future.result()
            except Exception as exc:  # noqa: BLE001 - ends this attempt, with the reason
                self._report(
                    TaskEnded(
                        launch.token,
                        ok=False,
                        ended_at=self._now(),
                        reason="staging_failed",
                        error=f"{type(exc).__name__}: {_message(exc)}",
                        retryable=bool(getattr(exc, "transient", False)),
                    )
                )
                return
            submit(dataclasses.replace(launch, env={**launch.env, **env}))

        def stage() -> None:
            loop.run_in_executor(None, hook.before_start, run, rec).add_done_callback(staged)

        return stage

    def _outputs_pending(self: Engine, rec: TaskRecord, result: bytes | None) -> bool:
        """True when the hook registers the task's outputs first; it succeeds after."""
        hook = self.task_hook
        if hook is None or not hook.wants(rec.spec):
            return False
        run = self.run_record
        assert run is not None and self._loop is not None

        def registered(future: Any) -> None:
            def apply() -> None:
                error = future.exception()
                if error is None:
                    rec.result = result
                    self._succeeded(rec)
                    return
                rec.reason = "outputs_failed"
                rec.error = f"{type(error).__name__}: {_message(error)}"
                self._set(rec, TaskState.FAILED)
                self._fail_dependents(rec)

            self._inbox.append(apply)
            self._wake()

        self._loop.run_in_executor(None, hook.after_success, run, rec).add_done_callback(registered)
        return True


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    return f"{message} (hint: {hint})" if hint else str(message)
