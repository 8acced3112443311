"""FunctionContext: what a function can do while it runs, besides returning a value.

Inside a function, ``current_context()`` (or a parameter annotated ``FunctionContext``)
gives the invocation's project and id, and the project's operations: submit a workflow,
call another function, and register "when run R ends, call function X". Operations are
*intents*: they take effect when the function returns successfully, in the same commit
that records its result, and exactly once even if the invocation runs again after a crash
(their ids derive from the invocation's). A failing function has no effect.

The project's resources act at once: ``tier(name)`` reads and writes the project's files
in a storage tier, ``database()`` opens the project's SQLite database, and
``read_bytes(ref)``/``open(ref)`` read a pre-signed upload passed as an argument.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hexflow.events.functions.resources import ProjectTier

_current: ContextVar[FunctionContext | None] = ContextVar("hexflow_function", default=None)


@dataclass
class FunctionContext:
    invocation_id: str
    project: str
    function: str
    version: int
    attempt: int = 1
    intents: list[dict[str, Any]] = field(default_factory=list)
    workdir: str = ""  # $HEXFLOW_HOME/functions/<project>: the project's resources
    _tiers: dict[str, ProjectTier] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ resources
    def tier(self, name: str) -> ProjectTier:
        """The project's files in storage tier ``name`` (``read_bytes``, ``write_bytes``,
        ``list``, ``exists``, ``delete``; ``local_path`` on POSIX tiers), confined to
        the project's namespace of the tier."""
        from hexflow.data.errors import DataNotFound
        from hexflow.events.functions.resources import ProjectTier, read_tiers

        found = self._tiers.get(name)
        if found is None:
            specs = read_tiers(self._project_dir().parent)
            if name not in specs:
                raise DataNotFound(
                    f"no storage tier {name!r} on this server",
                    hint=f"its tiers: {', '.join(sorted(specs)) or 'none'}",
                )
            found = self._tiers[name] = ProjectTier(specs[name], self.project)
        return found

    def database(self) -> sqlite3.Connection:
        """A connection to the project's SQLite database (one file per project, shared by
        its functions; autocommit unless you BEGIN). Close it when done."""
        from hexflow.events.functions.resources import project_database

        return project_database(self._project_dir())

    def read_bytes(self, ref: Any) -> bytes:
        """The bytes of an upload reference (``{"$ref": "upload:TIER/ID"}``)."""
        from hexflow.events.functions.resources import upload_location

        tier, path = upload_location(ref)
        return self.tier(tier).read_bytes(path)

    def open(self, ref: Any) -> io.BytesIO:
        """An upload reference as a binary file object."""
        return io.BytesIO(self.read_bytes(ref))

    def _project_dir(self) -> Path:
        if not self.workdir:
            raise RuntimeError("the project's resources exist only inside an invoked function")
        return Path(self.workdir)

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
