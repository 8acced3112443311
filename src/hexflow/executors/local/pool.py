"""WorkerPool: warm Python worker processes driven from the event loop.

Each worker is a child process in its own session (so a kill takes its children too),
talking over two pipes. The pool starts workers up front, hands one job to an idle worker,
and turns answers into callbacks. A worker that dies (killed on timeout, crashed, OOM)
is replaced; the loss of its job is reported to the caller.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from hexflow.executors.local.process import signal_group

# Kept in step with hexflow.executors.local.worker.BOOT (a test checks they are equal); not
# imported from there, so that the engine does not load the worker module.
_BOOT = (
    "import os, sys; "
    "sys.path[:0] = os.environ.pop('HEXFLOW_WORKER_PATH').split(os.pathsep); "
    "from hexflow.executors.local.worker import main; "
    "main(*map(int, sys.argv[1:4]))"
)

Answer = tuple[Any, ...]


@dataclass(eq=False)
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    jobs: Connection
    answers: Connection
    scratch: tuple[int, int]  # the pool's fds on the worker's stdout/stderr scratch files
    token: int | None = None
    logs: tuple[str, str] | None = None  # log files of the job in hand
    child: int | None = None  # pid of the shell command the job in hand started
    alive: bool = True


class WorkerPool:
    def __init__(
        self,
        size: int,
        scratch_dir: str,
        on_answer: Callable[[Answer], None],
        on_lost: Callable[[int, str], None],
        on_started: Callable[[int, int, str], None] | None = None,
        max_size: int | None = None,
    ) -> None:
        self.size = max(1, size)
        self.max_size = max(self.size, max_size or self.size * 4)
        self._scratch = scratch_dir
        self._on_answer = on_answer
        self._on_lost = on_lost
        self._on_started = on_started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[Worker] = []
        self._all: dict[str, Worker] = {}
        self._by_token: dict[int, Worker] = {}
        self._pending: deque[tuple[Any, ...]] = deque()  # jobs waiting for a worker
        self._count = 0
        self._closing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the workers on ``loop``; workers kept by ``detach`` are taken up again
        (their pipes now read by this loop) and only the missing ones started."""
        self._loop = loop
        self._closing = False
        for worker in self._idle:
            loop.add_reader(worker.answers.fileno(), self._readable, worker)
        for _ in range(self.size - len(self._idle)):
            self._idle.append(self._spawn())

    def detach(self) -> None:
        """Let go of the loop but keep the idle workers for the next ``start`` (on another
        loop): busy workers are killed (their jobs abandoned, as ``shutdown`` does), queued
        jobs dropped, workers beyond ``size`` stopped."""
        self._closing = True  # no replacement for what is stopped now
        for worker in [w for w in self._all.values() if w.token is not None]:
            worker.token = None  # abandoned: no loss is reported to anyone
            self._lose(worker, "detached")
        self._by_token.clear()
        self._pending.clear()
        while len(self._idle) > self.size:
            self._lose(self._idle[-1], "retired")
        if self._loop is not None:
            for worker in self._idle:
                self._loop.remove_reader(worker.answers.fileno())
        self._loop = None

    def _spawn(self) -> Worker:
        assert self._loop is not None
        job_r, job_w = os.pipe()
        ans_r, ans_w = os.pipe()
        self._count += 1
        env = dict(os.environ)
        env["HEXFLOW_WORKER_PATH"] = os.pathsep.join(p for p in sys.path if p)
        scratch = _scratch_files(self._scratch, self._count)
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(job_r), str(ans_w), str(os.getpid())],
            pass_fds=(job_r, ans_w),
            stdin=subprocess.DEVNULL,
            stdout=scratch[0],
            stderr=scratch[1],
            start_new_session=True,
            env=env,
            cwd=os.getcwd(),
        )
        os.close(job_r)
        os.close(ans_w)
        worker = Worker(
            name=f"local-py-{self._count}",
            proc=proc,
            jobs=Connection(job_w, readable=False),
            answers=Connection(ans_r, writable=False),
            scratch=scratch,
        )
        self._all[worker.name] = worker
        self._loop.add_reader(ans_r, self._readable, worker)
        return worker

    @property
    def busy(self) -> int:
        return len(self._by_token)

    def submit(self, job: tuple[Any, ...]) -> str:
        """Send ``job`` (its first item is the token) to an idle worker; returns its name.

        With no idle worker a new one starts, up to ``max_size``; past that, the job waits
        for the next worker to become idle (tiny fractional cpus must not fork-bomb).
        """
        if not self._idle and len(self._all) >= self.max_size:
            self._pending.append(job)
            return "queued"
        worker = self._idle.pop() if self._idle else self._spawn()
        return self._send(worker, job)

    def _send(self, worker: Worker, job: tuple[Any, ...]) -> str:
        token = job[0]
        worker.token = token
        worker.logs = (job[6], job[7])
        self._by_token[token] = worker
        try:
            worker.jobs.send_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self._lose(worker, "worker_lost")
        return worker.name

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def retire_idle(self, keep: int) -> int:
        """Stop idle workers beyond ``keep`` (at least ``size``): a pool that grew for a burst
        shrinks back. Returns how many were stopped."""
        stopped = 0
        while self._idle and not self._pending and len(self._all) > max(keep, self.size):
            self._lose(self._idle[0], "retired")  # idle: no job is lost
            stopped += 1
        return stopped

    def kill(self, token: int, reason: str) -> bool:
        """Kill the worker running ``token`` (process group), report the loss as ``reason``."""
        worker = self._by_token.get(token)
        if worker is None:
            for job in self._pending:  # not started yet: drop it
                if job[0] == token:
                    self._pending.remove(job)
                    self._on_lost(token, reason)
                    return True
            return False
        signal_group(worker.proc.pid, signal.SIGKILL)
        self._lose(worker, reason)
        return True

    def pid_of(self, token: int) -> int | None:
        worker = self._by_token.get(token)
        return worker.proc.pid if worker else None

    def signal_worker(self, token: int, sig: int) -> bool:
        """Signal the worker process running the Python job ``token``, if any."""
        worker = self._by_token.get(token)
        if worker is None or not worker.alive:
            return False
        try:
            os.kill(worker.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def signal_child(self, token: int, sig: int) -> bool:
        """Signal the process group of the shell command running for ``token``, if any."""
        worker = self._by_token.get(token)
        if worker is None or worker.child is None:
            return False
        signal_group(worker.child, sig)
        return True

    def _readable(self, worker: Worker) -> None:
        # One message per call: the reader is level-triggered, so the event loop calls
        # again at once if another is waiting (no extra poll() per message).
        try:
            message = pickle.loads(worker.answers.recv_bytes())
            if message[0] == "S":  # a shell command started: ("S", token, pid, tag)
                worker.child = message[2]
                if self._on_started is not None:
                    self._on_started(message[1], message[2], message[3])
                return
            self._by_token.pop(message[0], None)
            worker.token = None
            worker.child = None
            if worker.alive:
                if self._pending:
                    self._send(worker, self._pending.popleft())
                else:
                    self._idle.append(worker)
            self._on_answer(message)
        except (EOFError, OSError):
            self._lose(worker, "worker_lost")

    def _drain_started(self, worker: Worker) -> None:
        """Read what the worker sent but we have not handled: a command it started."""
        try:
            while worker.answers.poll(0):
                message = pickle.loads(worker.answers.recv_bytes())
                if message[0] == "S":
                    worker.child = message[2]
        except (EOFError, OSError, pickle.UnpicklingError):
            pass

    def _lose(self, worker: Worker, reason: str) -> None:
        if not worker.alive:
            return
        worker.alive = False
        self._drain_started(worker)
        if worker.child is not None:  # its shell command runs in a session of its own
            signal_group(worker.child, signal.SIGKILL)
        assert self._loop is not None
        self._loop.remove_reader(worker.answers.fileno())
        for conn in (worker.jobs, worker.answers):
            conn.close()
        signal_group(worker.proc.pid, signal.SIGKILL)
        try:
            worker.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._all.pop(worker.name, None)
        if worker in self._idle:
            self._idle.remove(worker)
        token = worker.token
        if token is not None:
            self._by_token.pop(token, None)
            if worker.logs is not None:
                _salvage(worker.scratch, worker.logs)
        for fd in worker.scratch:
            os.close(fd)
        if not self._closing and (len(self._all) < self.size or self._pending):
            fresh = self._spawn()
            if self._pending:
                self._send(fresh, self._pending.popleft())
            else:
                self._idle.append(fresh)
        if token is not None:
            self._on_lost(token, reason)

    def shutdown(self) -> None:
        self._closing = True
        self._pending.clear()
        for worker in list(self._all.values()):
            self._drain_started(worker)
            if worker.child is not None:
                signal_group(worker.child, signal.SIGKILL)
            if self._loop is not None and worker.alive:
                self._loop.remove_reader(worker.answers.fileno())
            worker.alive = False
            worker.jobs.close()
            worker.answers.close()
        for worker in list(self._all.values()):
            if worker.token is not None:  # busy: its task is abandoned, do not wait for it
                signal_group(worker.proc.pid, signal.SIGKILL)
        for worker in list(self._all.values()):
            try:
                worker.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                signal_group(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait()
            for fd in worker.scratch:
                os.close(fd)
        self._all.clear()
        self._idle.clear()


def _scratch_files(directory: str, n: int) -> tuple[int, int]:
    """Two anonymous files (created under a name no other pool can take — several pools
    of one process may start workers at the same moment — then unlinked) for a worker's
    fd 1 and 2."""
    os.makedirs(directory, exist_ok=True)
    fds = []
    for stream in ("out", "err"):
        fd, path = tempfile.mkstemp(
            prefix=f"worker-{os.getpid()}-{n}-", suffix=f".{stream}", dir=directory
        )
        os.unlink(path)  # nothing is left behind, whatever happens to us
        fds.append(fd)
    return fds[0], fds[1]


def _salvage(scratch: tuple[int, int], logs: tuple[str, str]) -> None:
    """Move what a worker that died mid-task had printed for it to the task's logs."""
    for fd, path in zip(scratch, logs, strict=True):
        size = os.fstat(fd).st_size
        if size:
            with open(path, "ab") as log:
                log.write(os.pread(fd, size, 0))
