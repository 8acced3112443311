"""Pilot jobs: a few allocations run many small tasks (docs/executors.md, Pilots).

``channel`` is the file protocol between the engine and its pilots; ``agent`` is the pilot
(``python -m hexflow.executors.pilot``) that runs in an allocation; ``executor`` is the
engine's side, with the elastic rule in ``strategy`` (pure); ``provider`` says where
allocations come from (local processes here; Slurm in ``executors/slurm/provider``).
``PilotExecutor`` is imported on first use, so that a pilot does not load the engine side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hexflow.executors.pilot.executor import PilotConfig, PilotExecutor
    from hexflow.executors.pilot.provider import LocalProvider

__all__ = ["LocalProvider", "PilotConfig", "PilotExecutor"]


def __getattr__(name: str) -> Any:
    if name in ("PilotExecutor", "PilotConfig"):
        from hexflow.executors.pilot import executor

        return getattr(executor, name)
    if name == "LocalProvider":
        from hexflow.executors.pilot.provider import LocalProvider

        return LocalProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
