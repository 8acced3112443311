"""A warm worker process for Python tasks: reads jobs from a pipe, calls, answers.

Run as ``python -m hexflow.executors.local.worker READ_FD WRITE_FD [ENGINE_PID]``.
Each job is the serialized (function blob, args, kwargs) with TaskRef placeholders plus the
upstream results; the answer carries the serialized return value, or the exception and its
traceback. Output of the task (fd 1 and 2, so C code and child processes are captured too)
goes to the task's own log files. The worker exits when the engine closes the pipe, and
is killed when the engine process dies, even in the middle of a task: a resumed run starts
that task again, and must not race a stale copy of it (e.g. in its checkpoint directory).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from hexflow.model.refs import TaskRef
from hexflow.model.spec import normalize_argv

PYTHON, SHELL_BUILDER = "python", "shell_builder"
_FUNCTIONS: dict[bytes, Any] = {}  # deserialized task functions, by their serialized form


def _substitute(value: Any, inputs: Mapping[str, Any]) -> Any:
    if isinstance(value, TaskRef):
        return inputs[value.task_id]
    if type(value) is list:
        return [_substitute(v, inputs) for v in value]
    if type(value) is tuple:
        return tuple(_substitute(v, inputs) for v in value)
    if type(value) is dict:
        return {k: _substitute(v, inputs) for k, v in value.items()}
    return value


class _Output:
    """fd 1/2 are scratch files the pool opened (and keeps open, to salvage what a task
    printed if the worker dies mid-task); after each task, what it wrote is moved to its
    log files and the scratch files are emptied."""

    def __init__(self) -> None:
        self._fds = [1, 2]

    def collect(self, out_path: str, err_path: str) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, path in zip(self._fds, (out_path, err_path), strict=True):
            size = os.lseek(fd, 0, os.SEEK_CUR)
            if size == 0:
                continue
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, size)
            with open(path, "ab") as log:
                log.write(data)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)


def run_job(job: tuple[Any, ...], output: _Output | None) -> tuple[Any, ...]:
    token, kind, payload, inputs, env, cwd, out_path, err_path = job
    saved_env = {k: os.environ.get(k) for k in env}
    saved_cwd = os.getcwd()
    start = time.time()
    try:
        os.environ.update(env)
        if cwd:
            os.chdir(cwd)
        fn_blob, args, kwargs = cloudpickle.loads(payload)
        fn = _FUNCTIONS.get(fn_blob)
        if fn is None:
            fn = _FUNCTIONS[fn_blob] = cloudpickle.loads(fn_blob)
            if len(_FUNCTIONS) > 256:
                _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
        if inputs:
            values = {k: pickle.loads(v) for k, v in inputs.items()}
            args = _substitute(args, values)
            kwargs = _substitute(kwargs, values)
        value = fn(*args, **kwargs)
        if kind == SHELL_BUILDER:
            value = _as_argv(value)
        answer: tuple[Any, ...] = (token, True, cloudpickle.dumps(value), None, None, None, start)
    except BaseException as exc:  # noqa: BLE001 - the task's failure is the answer
        tb = traceback.format_exc()
        try:
            blob = cloudpickle.dumps(exc)
            pickle.loads(blob)
        except Exception:
            blob = None
        answer = (token, False, blob, type(exc).__name__, _one_line(exc), tb, start)
        if output is not None:
            sys.stderr.write(tb)
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            answer = answer[:3] + ("SystemExit", f"task called exit: {exc}", tb, start)
    finally:
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        if cwd:
            os.chdir(saved_cwd)
        if output is not None:
            output.collect(out_path, err_path)
    return answer


def _as_argv(value: Any) -> list[str]:
    return list(normalize_argv(value))


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + "..."


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel SIGKILL this worker when the engine process dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the engine died before the request took effect
        os._exit(1)


def main(read_fd: int, write_fd: int, parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
    jobs = Connection(read_fd, writable=False)
    answers = Connection(write_fd, readable=False)
    output = _Output()
    while True:
        try:
            message = jobs.recv_bytes()
        except (EOFError, OSError):
            return
        job = pickle.loads(message)
        answers.send_bytes(pickle.dumps(run_job(job, output), protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *map(int, sys.argv[3:4]))
