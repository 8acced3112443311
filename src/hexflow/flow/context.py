"""Helpers a running task calls to learn about its own execution: its checkpoint
directory and whether it is being preempted."""

from __future__ import annotations

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
