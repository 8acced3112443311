"""Handles of runs on a server: ``RemoteRun`` (state, wait, cancel, tasks, logs, events)
and ``RemoteFuture`` (a task's result, fetched once the task has ended).

Results of Python tasks come back pickled and are unpickled here: only ask for results of
runs you trust (your own, or your project's), as with any pickle.
"""

from __future__ import annotations

import base64
import pickle
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hexflow.client._handle import RemoteHandle, poll_delays
from hexflow.errors import Conflict, HexflowError, TaskFailed

if TYPE_CHECKING:
    from hexflow.client._client import Client
    from hexflow.client._sse import Event

TERMINAL_RUN = frozenset({"succeeded", "failed", "cancelled"})


def _check_deadline(deadline: float | None, what: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"{what} did not end in time")


class RemoteRun(RemoteHandle):
    """A run on a server. ``info`` is its latest JSON view (refreshed by ``refresh``)."""

    TERMINAL = TERMINAL_RUN

    def __init__(self, client: Client, info: dict[str, Any], *, replayed: bool = False) -> None:
        super().__init__(info)
        self.client = client
        self.replayed = replayed  # an earlier submission with the same Idempotency-Key made it

    def __repr__(self) -> str:
        return f"<RemoteRun {self.id} {self.state}>"

    def _fetch(self) -> dict[str, Any]:
        return self.client.get_run(self.id)

    def _what(self) -> str:
        return f"run {self.id}"

    def cancel(self) -> RemoteRun:
        self.info = self.client.cancel(self.id)
        return self

    def tasks(self, state: str | None = None) -> list[dict[str, Any]]:
        return self.client.tasks(self.id, state=state)

    def future(self, task_id: str) -> RemoteFuture:
        return RemoteFuture(self.client, self.id, task_id)

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        return self.future(task_id).result(timeout)

    def logs(self, task_id: str, attempt: int | None = None) -> dict[str, Any]:
        return self.client.logs(self.id, task_id, attempt=attempt)

    def events(self) -> Iterator[Event]:
        return self.client.events(self.id)


class RemoteFuture:
    """A task of a run on a server; ``result()`` waits for it remotely."""

    def __init__(self, client: Client, run_id: str, task_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"<RemoteFuture {self.run_id}/{self.task_id}>"

    @property
    def state(self) -> str:
        return str(self.client.task(self.run_id, self.task_id)["state"])

    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "upstream_failed", "cancelled")

    def outcome(self, timeout: float | None = None) -> dict[str, Any]:
        """The ended task's outcome (state, reason, pickled result...), waiting for it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in poll_delays(0.05, 1.0):
            try:
                return self.client.task_result(self.run_id, self.task_id)
            except Conflict:  # not ended yet
                _check_deadline(deadline, f"task {self.task_id} of run {self.run_id}")
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def result(self, timeout: float | None = None) -> Any:
        """The task's return value; raises its exception, or ``TaskFailed``."""
        out = self.outcome(timeout)
        if out["state"] == "succeeded":
            blob = out.get("result")
            return pickle.loads(base64.b64decode(blob)) if blob else None  # noqa: S301
        raise task_error(out)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        out = self.outcome(timeout)
        return None if out["state"] == "succeeded" else task_error(out)


def task_error(out: dict[str, Any]) -> BaseException:
    """As ``TaskFuture``: the task's own exception (remote traceback noted), else TaskFailed."""
    if out.get("reason") == "error" and out.get("result"):
        try:
            exc = pickle.loads(base64.b64decode(out["result"]))  # noqa: S301
            if isinstance(exc, BaseException):
                exc.add_note(
                    f"hexflow: raised by task {out['name']!r} (attempt {out['attempt']}) of "
                    f"run {out['run_id']}; remote traceback:\n{out.get('traceback') or ''}"
                )
                return exc
        except Exception:  # noqa: BLE001 - e.g. its class is not importable here
            pass
    reason = out.get("reason")
    hint = None
    if reason == "upstream_failed":
        hint = f"fix task {out.get('root_cause')!r} first"
    elif reason in ("exit_code", "error"):
        hint = f"client.logs({out['run_id']!r}, {out['task_id']!r}) shows its output"
    err: HexflowError = TaskFailed(
        f"task {out['name']!r} {out['state']}: {out.get('error') or reason}",
        hint=hint,
        task=out["task_id"],
        reason=reason,
        exit_code=out.get("exit_code"),
        traceback=out.get("traceback"),
        root_cause=out.get("root_cause"),
    )
    return err
