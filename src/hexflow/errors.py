"""The error hierarchy of hexflow: one root, one base per subsystem.

Every error carries structured fields and a message that says what happened, why, and
what to do. Errors pickle (they cross process boundaries), so keep constructor
arguments equal to what ``__reduce__`` returns.
"""

from __future__ import annotations

from typing import Any


class HexflowError(Exception):
    """Root of every error hexflow raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        self.message = message
        self.hint = hint
        self.fields = fields
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.hint, self.fields))


def _rebuild(
    cls: type[HexflowError], message: str, hint: str | None, fields: dict[str, Any]
) -> Any:
    err = cls.__new__(cls)
    HexflowError.__init__(err, message, hint=hint, **fields)
    return err


class SpecError(HexflowError, ValueError):
    """A task or workflow definition is invalid (bad resource, cycle, missing command...)."""


class WorkflowFileError(SpecError):
    """A YAML/JSON workflow file is invalid; ``fields`` holds ``path``, ``line`` and ``field``."""


class InvalidTransition(HexflowError):
    """A state machine was asked for a transition it does not allow."""


class StoreError(HexflowError):
    """The persistent store failed or holds something unexpected."""


class RunNotFound(StoreError, LookupError):
    """No run with the given id (or prefix) exists in the store."""


class ExecutorError(HexflowError):
    """An executor could not launch or control work."""


class ContainerError(ExecutorError):
    """A container task cannot run as asked: an unknown image, a mount outside the allowed
    roots, a runtime that cannot honour the request. ``fields``: ``task``, ``image``..."""


class EngineError(HexflowError):
    """The engine cannot drive a run (e.g. it is owned by a live process)."""


class TaskFailed(HexflowError):
    """A task ended without a result; raised by ``TaskFuture.result()``.

    ``fields``: ``task``, ``reason`` (error, timeout, walltime, cancelled, upstream_failed,
    worker_lost, exit_code), ``exit_code``, ``traceback`` and ``root_cause`` (the task id
    where the failure started, for upstream failures).
    """


class FunctionFailed(HexflowError):
    """A function invoked through the gateway failed or timed out; raised by the SDK's
    ``Client.invoke`` and ``Invocation.result()``.

    ``fields``: ``invocation``, ``function``, ``state`` (failed, timed_out), ``error`` and
    ``traceback`` (the remote traceback, also printed as a note of the exception).
    """


class Preempted(HexflowError):
    """Raised by a task that stopped early on a preemption notice, its checkpoint saved.

    The engine requeues the task (``preemptions`` counted, not a retry); it runs again from
    its checkpoint when the machine has room. See ``hexflow.preemption_requested()``.
    """


class ServiceError(HexflowError):
    """Service mode (accounts, authentication, API requests) refused or failed a request."""


class NotFound(ServiceError, LookupError):
    """No such object, or not one the caller may see (the API answers 404 for both)."""


class Conflict(ServiceError):
    """The object exists already, or another request holds it (the API answers 409)."""


class AuthError(ServiceError):
    """No valid credentials: missing, malformed, expired, revoked or forged (401)."""


class Forbidden(ServiceError):
    """Valid credentials without the scope or role the request needs (403)."""
