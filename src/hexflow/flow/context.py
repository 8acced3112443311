"""Helpers a running task calls to learn about its own execution: its checkpoint
directory, whether it is being preempted, and where its datasets are."""

from __future__ import annotations

import json
import os
from pathlib import Path


def checkpoint_dir() -> Path:
    """The task's checkpoint directory; it survives retries and restarts of the task.

    Only tasks declared with ``checkpoint=True`` have one.
    """
    path = os.environ.get("HEXFLOW_CHECKPOINT_DIR")
    if not path:
        from hexflow.errors import HexflowError

        raise HexflowError(
            "this task has no checkpoint directory",
            hint="declare it with @hx.task(checkpoint=True)",
        )
    return Path(path)


def preemption_requested() -> bool:
    """True once the engine has asked this task to stop for higher-priority work.

    A long task of QoS ``preempt`` checks it between steps: on True it saves its state to
    its checkpoint directory and raises ``hexflow.errors.Preempted`` (or just returns when
    it is done anyway). It has the site's grace period (``HEXFLOW_PREEMPT_GRACE``) before it
    is stopped; either way it is requeued and later resumes from its checkpoint.
    """
    from hexflow.executors import taskcontext

    return taskcontext.preemption_requested()


def input_path(name: str) -> Path:
    """Where the version of dataset ``name`` the task reads was staged (a directory, in the
    tier the task runs against). Only for datasets declared with ``inputs=[...]``."""
    return _dataset_path("inputs", name)


def output_path(name: str) -> Path:
    """The empty directory to write the new version of ``name`` into; it is registered in
    the catalog once the task succeeds. Only for datasets declared with ``outputs=[...]``."""
    return _dataset_path("outputs", name)


def _dataset_path(role: str, name: str) -> Path:
    from hexflow.errors import HexflowError

    declared = json.loads(os.environ.get("HEXFLOW_DATASETS") or "{}").get(role, {})
    if name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise HexflowError(
            f"this task has no {role[:-1]} dataset {name!r} (its {role}: {known})",
            hint=f"declare it: @hx.task({role}=[{name!r}])",
        )
    entry = declared[name]
    return Path(entry["path"] if isinstance(entry, dict) else entry)
