"""LocalExecutor: runs tasks on this machine in a pool of warm worker processes — a Python
task is called in a worker, a shell task's command is started and waited for by one (in a
session of its own) — and reports TaskStarted/TaskEnded.

It binds what the scheduler accounted: GPU ids (``CUDA_VISIBLE_DEVICES`` per task) and time
limits (timeout and walltime: a shell command's process group gets SIGTERM, then SIGKILL
after the grace time; a Python task's worker is killed and replaced). A ``@shell`` task
whose command depends on upstream results builds it in the worker first. A task with an
``image`` runs inside that container image (``containers``, ``incontainer``).
"""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import signal
import time
from dataclasses import dataclass

import psutil

from hexflow.executors.base import Launch, Report, TaskEnded, TaskStarted
from hexflow.executors.containers.planning import ContainerConfig
from hexflow.executors.local.containers import (
    PROVENANCE,
    ContainerLauncher,
    end_reason,
    oom_message,
    signal_code,
)
from hexflow.executors.local.pool import Answer, WorkerPool
from hexflow.executors.local.process import reap_process_tag
from hexflow.model import Resources, TaskKind

_ZERO = pickle.dumps(0)
_WORKER_DIED = "the worker process died while running the task (crash, signal or out of memory)"


@dataclass(eq=False)
class _Active:
    launch: Launch
    gpu_ids: list[int]
    timer: asyncio.TimerHandle | None = None
    phase: str = "python"  # python | shell | container-python
    limit_reason: str | None = None
    container: dict[str, object] | None = None  # a container task: what ran (provenance)


class LocalExecutor:
    name = "local"
    places_work = False  # the engine fits tasks into this machine's capacity

    def __init__(
        self,
        *,
        cpus: float | None = None,
        memory: int | None = None,
        gpus: int = 0,
        workers: int | None = None,
        scratch_dir: str = ".hexflow/scratch",
        kill_grace: float = 5.0,
        containers: ContainerConfig | None = None,
    ) -> None:
        cpus = float(cpus if cpus is not None else (os.cpu_count() or 1))
        self.capacity = Resources(
            cpus=cpus,
            memory=memory if memory is not None else psutil.virtual_memory().total,
            gpus=gpus,
        )
        self._free_gpus = list(range(gpus))
        self._active: dict[int, _Active] = {}
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = WorkerPool(
            size=workers or max(1, math.ceil(cpus)),
            scratch_dir=scratch_dir,
            on_answer=self._answered,
            on_lost=self._worker_lost,
            on_started=self._shell_started,
        )
        self._grace = kill_grace
        self._containers = ContainerLauncher(containers or ContainerConfig(), scratch_dir)

    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self._loop = loop
        self._report = report
        self._pool.start(loop)

    def submit(self, launch: Launch) -> None:
        assert self._loop is not None and self._report is not None
        gpus = launch.spec.resources.gpus
        gpu_ids, self._free_gpus = self._free_gpus[:gpus], self._free_gpus[gpus:]
        kind = launch.spec.kind
        active = _Active(launch=launch, gpu_ids=gpu_ids)
        active.phase = "python" if kind is TaskKind.PYTHON else "shell"
        env = dict(launch.env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        launch.env = env
        container = None
        if launch.spec.image is not None:
            try:  # a mount outside the allowed roots is refused here (launch_failed)
                container = self._containers.job(launch, gpu_ids)
            except Exception:
                self._free_gpus.extend(gpu_ids)
                raise
            active.container = {}
            if kind is TaskKind.PYTHON:
                active.phase = "container-python"
        self._active[launch.token] = active
        limit = launch.spec.time_limit
        if limit is not None:
            active.timer = self._loop.call_later(limit[0], self._time_up, launch.token, limit[1])
        worker = self._pool.submit(
            (
                launch.token,
                kind.value,
                launch.spec.payload,
                dict(launch.inputs),
                env,
                launch.cwd,
                launch.stdout,
                launch.stderr,
                launch.command or launch.spec.command,
                launch.spec.shell,
                *((container,) if container is not None else ()),
            )
        )
        if active.phase == "python":  # the others report it when their command starts
            self._report(TaskStarted(launch.token, worker, time.time()))

    def _shell_started(self, token: int, pid: int, tag: str) -> None:
        assert self._report is not None
        if token in self._active:
            # The worker kills the command's process group if the engine dies (the worker's
            # parent-death signal), so the tag need not be persisted before acting on it.
            self._report(TaskStarted(token, tag, time.time()))

    def _answered(self, answer: Answer) -> None:
        token, ok, blob, err_type, message, tb, _start, code, spawned, join, *more = answer
        active = self._active.get(token)
        if active is None:
            return
        now = time.time()
        if active.container is not None and more:
            active.container = more[0]
        if (active.phase == "shell" and err_type is None) or err_type == "container_exit":
            self._command_ended(active, code, message)
        elif ok:
            self._end(
                TaskEnded(token, ok=True, ended_at=now, result=blob, spawned=spawned, join=join)
            )
        elif err_type == "launch_failed":
            self._end(
                TaskEnded(
                    token,
                    ok=False,
                    ended_at=now,
                    exit_code=code,
                    reason="launch_failed",
                    error=message,
                    retryable=False,
                )
            )
        else:
            self._end(
                TaskEnded(
                    token,
                    ok=False,
                    ended_at=now,
                    result=blob,  # the pickled exception, when it pickles
                    reason="error",
                    error=message,
                    traceback=tb,
                    extra={"error_type": err_type},
                )
            )

    def _command_ended(self, active: _Active, code: int, message: str | None = None) -> None:
        token = active.launch.token
        if code == 0 and active.limit_reason is None:
            self._end(TaskEnded(token, ok=True, ended_at=time.time(), exit_code=0, result=_ZERO))
            return
        reason = active.limit_reason or "exit_code"
        if active.container is not None:
            code = signal_code(code, active.limit_reason is not None)
            reason = end_reason(active.limit_reason, bool(active.container.get("oom")))
        error = _limit_message(active, reason) or _exit_message(active, reason, code, message)
        self._end(
            TaskEnded(
                token,
                ok=False,
                ended_at=time.time(),
                exit_code=code,
                reason=reason,
                error=error,
                traceback=_tail(active.launch.stderr),
            )
        )

    def _worker_lost(self, token: int, reason: str) -> None:
        active = self._active.get(token)
        if active is None:
            return
        reason = active.limit_reason or reason
        self._end(
            TaskEnded(
                token,
                ok=False,
                ended_at=time.time(),
                reason=reason,
                error=_limit_message(active, reason) or _WORKER_DIED,
            )
        )

    def _time_up(self, token: int, which: str) -> None:
        active = self._active.get(token)
        if active is None:
            return
        active.limit_reason = which
        self._kill(active, which)

    def reap(self, worker: str) -> bool:
        return reap_process_tag(worker)

    def cancel(self, token: int, reason: str = "cancelled") -> None:
        active = self._active.get(token)
        if active is not None:
            active.limit_reason = active.limit_reason or reason
            self._kill(active, reason)

    def preempt(self, token: int, grace: float) -> None:
        """Ask the task to stop within ``grace`` seconds, then stop it (reason: preempted).

        A shell command's process group gets SIGTERM (and SIGKILL after the grace); a
        Python task gets the preemption notice (its worker SIGUSR1, which makes
        ``hexflow.preemption_requested()`` true) and its worker is killed after the grace.
        """
        active = self._active.get(token)
        if active is None:
            return
        assert self._loop is not None
        active.limit_reason = active.limit_reason or "preempted"
        if active.phase == "shell" and self._pool.signal_child(token, signal.SIGTERM):
            self._loop.call_later(grace, self._pool.signal_child, token, signal.SIGKILL)
        elif self._notify(active):
            self._loop.call_later(grace, self._grace_over, active)
        else:
            self._pool.kill(token, "preempted")

    def _notify(self, active: _Active) -> bool:
        """The preemption notice (SIGUSR1) to a Python task: to its worker, or in a container
        through the runtime and the container's init."""
        token = active.launch.token
        if active.phase == "python":
            return self._pool.signal_worker(token, signal.SIGUSR1)
        return active.phase == "container-python" and self._pool.signal_child(token, signal.SIGUSR1)

    def _grace_over(self, active: _Active) -> None:
        if self._active.get(active.launch.token) is active:  # still the same attempt
            self._kill(active, "preempted")

    def _kill(self, active: _Active, reason: str) -> None:
        token = active.launch.token
        commands = ("shell", "container-python")  # a container's runtime relays the signal
        if active.phase in commands and self._pool.signal_child(token, signal.SIGTERM):
            # SIGTERM first, so the command can save its state; SIGKILL after the grace time
            assert self._loop is not None
            self._loop.call_later(self._grace, self._pool.signal_child, token, signal.SIGKILL)
        else:  # a Python task, or a command still being built: the worker goes
            self._pool.kill(token, reason)

    def _end(self, event: TaskEnded) -> None:
        assert self._report is not None
        active = self._active.pop(event.token, None)
        if active is not None:
            if active.container:  # image name and digest, for provenance
                event.extra.update((k, v) for k, v in active.container.items() if k in PROVENANCE)
            if active.timer is not None:
                active.timer.cancel()
            self._free_gpus.extend(active.gpu_ids)
        self._report(event)

    def shutdown(self) -> None:
        self._pool.shutdown()
        self._forget_active()

    def _forget_active(self) -> None:
        for active in self._active.values():
            if active.timer is not None:
                active.timer.cancel()
            self._free_gpus.extend(active.gpu_ids)
        self._active.clear()
        self._free_gpus.sort()


class WarmLocalExecutor(LocalExecutor):
    """A LocalExecutor whose idle workers outlive the run: ``shutdown`` (the engine's, at
    the end of each run) stops what still runs and keeps the idle workers for the next
    run's ``start``, so a server driving many small runs in one thread does not start a
    Python worker process per run. ``close`` stops them for good."""

    def shutdown(self) -> None:
        self._pool.detach()
        self._forget_active()

    def close(self) -> None:
        LocalExecutor.shutdown(self)


def _limit_message(active: _Active, reason: str) -> str | None:
    limit = active.launch.spec.time_limit
    if reason in ("timeout", "walltime") and limit is not None:
        return f"killed after exceeding its {reason} of {limit[0]:g}s"
    if reason == "cancelled":
        return "cancelled by request"
    if reason == "preempted":
        return "preempted to make room for higher-priority work"
    return None


def _exit_message(active: _Active, reason: str, code: int, message: str | None) -> str:
    if reason == "oom":
        return oom_message(active.launch.spec, code)
    if message:
        return message
    if code >= 0:
        return f"command exited with code {code}"
    return f"command was killed by signal {-code}"


def _tail(path: str, limit: int = 4000) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace") or None
    except OSError:
        return None


__all__ = ["LocalExecutor"]
