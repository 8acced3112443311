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
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hexflow.executors.local.process import process_tag, signal_group

# What only Python tasks need (cloudpickle, the task context, the model) is imported on the
# first Python task: a worker that runs commands only starts in about half the time.
if TYPE_CHECKING:
    from hexflow.executors.taskcontext import TaskContext

PYTHON, SHELL, SHELL_BUILDER = "python", "shell", "shell_builder"
_ZERO = pickle.dumps(0)  # like Parsl's bash_app, a shell task's value is its exit code
_FUNCTIONS: dict[bytes, Any] = {}  # deserialized task functions, by their serialized form


def _substitute(value: Any, inputs: Mapping[str, Any]) -> Any:
    from hexflow.model.refs import TaskRef

    if isinstance(value, TaskRef):
        return inputs[value.task_id]
    if type(value) is list:
        return [_substitute(v, inputs) for v in value]
    if type(value) is tuple:
        return tuple(_substitute(v, inputs) for v in value)
    if type(value) is dict:
        return {k: _substitute(v, inputs) for k, v in value.items()}
    return value


_SIZE = struct.Struct("!i")
_BIG_SIZE = struct.Struct("!Q")


class Pipe:
    """Messages on a pipe, framed as ``multiprocessing.connection.Connection`` frames them
    (the pool's end is one): a 4-byte big-endian length, or -1 then an 8-byte length.
    Here so that a worker does not import multiprocessing (a fifth of its start-up)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send_bytes(self, data: bytes) -> None:
        n = len(data)
        header = _SIZE.pack(n) if n <= 0x7FFFFFFF else _SIZE.pack(-1) + _BIG_SIZE.pack(n)
        if n <= 16384:
            self._write(header + data)
        else:  # no copy of a large message
            self._write(header)
            self._write(data)

    def recv_bytes(self) -> bytes:
        (size,) = _SIZE.unpack(self._read(4, start=True))
        if size == -1:
            (size,) = _BIG_SIZE.unpack(self._read(8))
        return self._read(size)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def _read(self, size: int, start: bool = False) -> bytes:
        chunks = []
        left = size
        while left:
            chunk = os.read(self.fd, left)
            if not chunk:
                if start and left == size:
                    raise EOFError
                raise OSError("got end of file during message")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


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


def run_job(
    job: tuple[Any, ...], output: _Output | None, answers: Pipe | None = None
) -> tuple[Any, ...]:
    """Run one job; the answer is (token, ok, blob, error type, message, traceback, start,
    exit code). Shell jobs send ("S", token, pid, tag) on ``answers`` once started. A job
    with an 11th item runs in a container image (``incontainer``)."""
    token, kind, payload, inputs, env, cwd, out_path, err_path, command, use_shell, *more = job
    if more and more[0] is not None:
        from hexflow.executors.local.incontainer import run_container_job

        return run_container_job(
            job, output, answers, run_job=run_job, run_command=run_command, slot=_command
        )
    if kind == SHELL:
        return run_command(token, tuple(command), use_shell, env, cwd, out_path, err_path, answers)
    import cloudpickle

    from hexflow.executors import taskcontext
    from hexflow.model.spec import shell_command

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
        context = taskcontext.enter(env.get("HEXFLOW_TASK_ID", str(token)))
        try:
            value = fn(*args, **kwargs)
        finally:
            taskcontext.leave()
        if kind == SHELL_BUILDER:
            command = shell_command(value, use_shell, str(token))
        else:
            answer: tuple[Any, ...] = _python_answer(token, value, context, start)
    except BaseException as exc:  # noqa: BLE001 - the task's failure is the answer
        import traceback

        tb = traceback.format_exc()
        try:
            blob = cloudpickle.dumps(exc)
            pickle.loads(blob)
        except Exception:
            blob = None
        name, message = type(exc).__name__, _one_line(exc)
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            name, message = "SystemExit", f"task called exit: {exc}"
        answer = (token, False, blob, name, message, tb, start, None, None, None)
        if output is not None:
            sys.stderr.write(tb)
    finally:
        _restore_env(saved_env)
        if cwd:
            os.chdir(saved_cwd)
        if output is not None:
            output.collect(out_path, err_path)
    if kind == SHELL_BUILDER and command is not None:
        return run_command(token, command, use_shell, env, cwd, out_path, err_path, answers)
    return answer


def _python_answer(token: int, value: Any, context: TaskContext, start: float) -> tuple[Any, ...]:
    """(token, ok, result, -, -, -, start, exit code, spawned specs, join target)."""
    import cloudpickle

    spawned = pickle.dumps(context.spawned) if context.spawned else None
    join = getattr(value, "task_id", None) if getattr(value, "_hexflow_future", False) else None
    if join is not None:
        if join not in {spec.id for spec in context.spawned}:
            raise ValueError(f"a task may return the future of a task it spawned, not {join!r}")
        return (token, True, None, None, None, None, start, None, spawned, join)
    return (token, True, cloudpickle.dumps(value), None, None, None, start, None, spawned, None)


def run_command(
    token: int,
    command: tuple[str, ...],
    use_shell: bool,
    env: Mapping[str, str],
    cwd: str | None,
    out_path: str,
    err_path: str,
    answers: Pipe | None,
) -> tuple[Any, ...]:
    """Run a shell task's command in its own session and wait for it.

    An argument list, never a shell unless the spec asked for one. The group leader's pid and
    tag go to the engine first, so it can signal the group (time limits, cancel) and record it.
    """
    start = time.time()
    _command_mode(True)
    try:
        # The command's environment is ours plus ``env``: set in os.environ for the time of the
        # fork (Popen then passes no env of its own), which is much cheaper than building a
        # whole new environment; restored right after.
        saved_env = {k: os.environ.get(k) for k in env}
        try:
            out = os.open(out_path, _LOG_FLAGS, 0o666)  # as open(path, "ab"), without the buffer
            try:
                err = os.open(err_path, _LOG_FLAGS, 0o666)
                try:
                    os.environ.update(env)
                    proc = subprocess.Popen(  # noqa: S603 - argv list; a shell only on explicit request
                        command[0] if use_shell else list(command),
                        shell=use_shell,  # noqa: S602
                        stdin=_devnull(),
                        stdout=out,
                        stderr=err,
                        cwd=cwd or None,
                        start_new_session=True,
                    )
                finally:
                    _restore_env(saved_env)
                    os.close(err)
            finally:
                os.close(out)
        except (OSError, ValueError, TypeError) as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            if cwd and not os.path.isdir(cwd):
                message = f"cannot start the command: its directory {cwd!r} does not exist"
            elif isinstance(exc, OSError):
                message = f"cannot start {command[0]!r}: {exc.strerror or exc}"
            else:
                message = f"cannot start {command[0]!r}: {exc}"
            return (token, False, None, "launch_failed", message, None, start, code, None, None)
        _command["child"] = proc.pid
        if _command["orphaned"]:  # the engine died while we were starting the command
            signal_group(proc.pid, signal.SIGKILL)
            os._exit(1)
        if answers is not None:
            answers.send_bytes(pickle.dumps(("S", token, proc.pid, process_tag(proc.pid))))
        code = proc.wait()
        signal_group(proc.pid, signal.SIGKILL)  # the leader is gone: stragglers go with it
        result = _ZERO if code == 0 else None
        return (token, code == 0, result, None, None, None, start, code, None, None)
    finally:
        _command_mode(False)


_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
_DEVNULL: list[int] = []


def _devnull() -> int:
    """A shell command's stdin: /dev/null, opened once per worker."""
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
    return _DEVNULL[0]


def _restore_env(saved: Mapping[str, str | None]) -> None:
    for key, old in saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + "..."


_PR_SET_PDEATHSIG = 1
_prctl: Any = None
_command: dict[str, Any] = {"running": False, "child": None, "orphaned": False}


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel signal this worker when the engine process dies.

    SIGKILL while a Python task runs (it stops at once, even inside C code); SIGTERM while a
    shell command runs, whose handler kills the command's process group (a session of its
    own, which would otherwise outlive the engine) before the worker exits.
    """
    global _prctl
    try:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        _prctl = None
        return
    signal.signal(signal.SIGTERM, _on_term)
    if os.getppid() != parent:  # the engine died before the request took effect
        os._exit(1)


def _on_term(signum: int, frame: Any) -> None:
    if not _command["running"]:
        os._exit(128 + signum)
    _command["orphaned"] = True
    if _command["child"] is not None:
        signal_group(_command["child"], signal.SIGKILL)
        if _command.get("cleanup"):  # a container outlives its runtime's process: remove it
            from hexflow.executors.local.incontainer import cleanup_now

            cleanup_now(_command)
        os._exit(128 + signum)
    # Popen is under way: run_command kills the child as soon as its pid is known


def _on_preempt_notice(signum: int, frame: Any) -> None:
    """SIGUSR1: the engine preempts the running Python task; it may save and stop."""
    from hexflow.executors import taskcontext

    taskcontext.request_preemption()


def _command_mode(on: bool) -> None:
    _command["running"] = on
    _command["child"] = None
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM if on else signal.SIGKILL, 0, 0, 0)


def main(read_fd: int, write_fd: int, parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
    signal.signal(signal.SIGUSR1, _on_preempt_notice)
    jobs = Pipe(read_fd)
    answers = Pipe(write_fd)
    output = _Output()
    while True:
        try:
            message = jobs.recv_bytes()
        except (EOFError, OSError):
            return
        job = pickle.loads(message)
        try:
            answer = run_job(job, output, answers)
            blob = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: answer it, do not die
            import traceback

            tb = traceback.format_exc()
            message_ = f"hexflow worker error: {type(exc).__name__}: {exc}"
            failed = (job[0], False, None, "WorkerError", message_, tb, time.time(), None)
            blob = pickle.dumps((*failed, None, None), protocol=pickle.HIGHEST_PROTOCOL)
        answers.send_bytes(blob)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *map(int, sys.argv[3:4]))

# The pool starts workers with ``python -c BOOT``: the engine's sys.path reaches the worker
# in HEXFLOW_WORKER_PATH, which is removed at once, so tasks (and the commands they start)
# see the user's own PYTHONPATH, not the engine's.
BOOT = (
    "import os, sys; "
    "sys.path[:0] = os.environ.pop('HEXFLOW_WORKER_PATH').split(os.pathsep); "
    "from hexflow.executors.local.worker import main; "
    "main(*map(int, sys.argv[1:4]))"
)
