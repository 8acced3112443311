"""Where work runs. Executors report events; they never decide policy.

The names of ``base`` are loaded on first use: a worker process imports this package (as
the parent of its own module), and should not pay for the model at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hexflow.executors.base import Executor, ExecutorEvent, Launch, TaskEnded, TaskStarted

__all__ = ["Executor", "ExecutorEvent", "Launch", "TaskEnded", "TaskStarted"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hexflow.executors import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
