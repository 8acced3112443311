"""What runs on a Dask worker: one hexflow Python task, through the local worker's
``run_job`` (arguments substituted, exceptions and tracebacks caught, spawned tasks
collected), its ``print`` output going to the task's log files.

A Dask worker runs tasks in threads, so output is routed per thread: ``sys.stdout`` and
``sys.stderr`` become routers that send each thread's writes to the log files of the task
that thread runs (output of C code and child processes is not captured). Environment
variables and the working directory are process-wide: tasks that rely on them want workers
with one thread each (``--nthreads 1``; the executor's own LocalCluster has that).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from hexflow.executors.local.worker import run_job

_local = threading.local()


class _Router:
    """A text stream that writes to the current thread's task log, else to ``fallback``."""

    def __init__(self, fallback: TextIO, which: int) -> None:
        self.fallback = fallback
        self.which = which

    def _target(self) -> TextIO:
        logs = getattr(_local, "logs", None)
        return logs[self.which] if logs is not None else self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def _install() -> None:
    if not isinstance(sys.stdout, _Router):
        sys.stdout = _Router(sys.stdout, 0)
    if not isinstance(sys.stderr, _Router):
        sys.stderr = _Router(sys.stderr, 1)


def run_task(job: tuple[Any, ...]) -> tuple[Any, ...]:
    """Run the local worker's ``job`` tuple here; its answer tuple."""
    _install()
    out_path, err_path = job[6], job[7]
    with open(out_path, "a") as out, open(err_path, "a") as err:
        _local.logs = (out, err)
        try:
            answer = run_job(job, None, None)
            if not answer[1] and answer[5]:
                err.write(answer[5])  # the traceback, as a local task's stderr shows it
        finally:
            _local.logs = None
    return answer


__all__ = ["run_task"]
