"""hexflow: a workflow environment for HPC facilities.

The public Python API (a contract; see tests/test_public_api.py)::

    import hexflow as hx

    @hx.task(cpus=1, memory="512M", walltime="10m", retries=2)
    def simulate(step: int) -> str: ...

    with hx.Workflow("demo") as wf:
        a = simulate(1)
    run = wf.run()

Names are loaded on first use, so ``import hexflow`` stays cheap in worker processes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "task": "hexflow.flow.decorators",
    "shell": "hexflow.flow.decorators",
    "TaskFunction": "hexflow.flow.decorators",
    "Workflow": "hexflow.flow.workflow",
    "Run": "hexflow.flow.workflow",
    "TaskFuture": "hexflow.flow.futures",
    "load_workflow": "hexflow.flow.yamlspec",
    "checkpoint_dir": "hexflow.flow.context",
    "preemption_requested": "hexflow.flow.context",
    "input_path": "hexflow.flow.context",
    "output_path": "hexflow.flow.context",
    "Dataset": "hexflow.model.datasets",
    "Settings": "hexflow.settings",
    "QoS": "hexflow.model",
    "Resources": "hexflow.model",
    "TaskState": "hexflow.model",
    "RunState": "hexflow.model",
    "HexflowError": "hexflow.errors",
    "SpecError": "hexflow.errors",
    "WorkflowFileError": "hexflow.errors",
    "TaskFailed": "hexflow.errors",
    "FunctionFailed": "hexflow.errors",
    "Preempted": "hexflow.errors",
    "Client": "hexflow.client",
}

__all__ = [
    "Client",
    "Dataset",
    "FunctionFailed",
    "HexflowError",
    "Preempted",
    "QoS",
    "Resources",
    "Run",
    "RunState",
    "Settings",
    "SpecError",
    "TaskFailed",
    "TaskFunction",
    "TaskFuture",
    "TaskState",
    "Workflow",
    "WorkflowFileError",
    "__version__",
    "checkpoint_dir",
    "input_path",
    "load_workflow",
    "output_path",
    "preemption_requested",
    "shell",
    "task",
]

if TYPE_CHECKING:
    from hexflow.client import Client
    from hexflow.errors import (
        FunctionFailed,
        HexflowError,
        Preempted,
        SpecError,
        TaskFailed,
        WorkflowFileError,
    )
    from hexflow.flow.context import (
        checkpoint_dir,
        input_path,
        output_path,
        preemption_requested,
    )
    from hexflow.flow.decorators import TaskFunction, shell, task
    from hexflow.flow.futures import TaskFuture
    from hexflow.flow.workflow import Run, Workflow
    from hexflow.flow.yamlspec import load_workflow
    from hexflow.model import QoS, Resources, RunState, TaskState
    from hexflow.model.datasets import Dataset
    from hexflow.settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hexflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
