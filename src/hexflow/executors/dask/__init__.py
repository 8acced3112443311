"""The Dask executor: Python-function tasks on a ``dask.distributed`` cluster.

``remote`` is what runs on a worker; ``DaskExecutor`` is imported on first use, and
imports Dask only then (it is an optional dependency: ``pip install hexflow[dask]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hexflow.executors.dask.executor import DaskExecutor

__all__ = ["DaskExecutor"]


def __getattr__(name: str) -> Any:
    if name == "DaskExecutor":
        from hexflow.executors.dask.executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
