"""The local executor: this machine's cores, memory and GPUs.

``LocalExecutor`` is imported on first use, so a worker process (``python -m
hexflow.executors.local.worker``) does not pay for the engine-side modules at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hexflow.executors.local.executor import LocalExecutor

__all__ = ["LocalExecutor"]


def __getattr__(name: str) -> Any:
    if name == "LocalExecutor":
        from hexflow.executors.local.executor import LocalExecutor

        return LocalExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
