"""Helpers a running task calls to learn about its own execution."""

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
