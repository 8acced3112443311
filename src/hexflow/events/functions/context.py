"""FunctionContext: what a function can do while it runs, besides returning a value.

Inside a function, ``current_context()`` (or a parameter annotated ``FunctionContext``)
gives the invocation's project and id, and the project's operations: submit a workflow,
call another function, and register "when run R ends, call function X". Operations are
*intents*: they take effect when the function returns successfully, in the same commit
that records its result, and exactly once even if the invocation runs again after a crash
(their ids derive from the invocation's). A failing function has no effect.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_current: ContextVar[FunctionContext | None] = ContextVar("hexflow_function", default=None)


@dataclass
class FunctionContext:
    invocation_id: str
    project: str
    function: str
    version: int
    attempt: int = 1
    intents: list[dict[str, Any]] = field(default_factory=list)

    def _id(self, what: str) -> str:
        n = len(self.intents)
        return hashlib.sha256(f"{self.invocation_id}:{n}:{what}".encode()).hexdigest()[:12]

    def submit(self, workflow: dict[str, Any] | str, params: dict[str, str] | None = None) -> str:
        """Submit a workflow (a document in hexflow's YAML/JSON format, as a dict or YAML
        text) to this project; returns the id its run will have."""
        run_id = self._id("run")
        self.intents.append(
            {"op": "submit", "run_id": run_id, "workflow": workflow, "params": dict(params or {})}
        )
        return run_id

    def on_completion(self, run_id: str, function: str, args: dict[str, Any] | None = None) -> str:
        """When run ``run_id`` ends (succeeded, failed or cancelled), call ``function`` with
        ``args`` (and the event, if it takes an ``event`` argument). Returns the trigger id."""
        trigger_id = self._id("trigger")
        self.intents.append(
            {
                "op": "on_completion",
                "trigger_id": trigger_id,
                "run_id": run_id,
                "function": function,
                "args": dict(args or {}),
            }
        )
        return trigger_id

    def invoke(self, function: str, args: dict[str, Any] | None = None) -> str:
        """Call another function of the project asynchronously; returns its invocation id."""
        invocation_id = self._id("invoke")
        self.intents.append(
            {
                "op": "invoke",
                "invocation_id": invocation_id,
                "function": function,
                "args": dict(args or {}),
            }
        )
        return invocation_id


def current_context() -> FunctionContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_context() is only available inside an invoked function")
    return ctx


def enter(ctx: FunctionContext) -> Any:
    return _current.set(ctx)


def leave(token: Any) -> None:
    _current.reset(token)
