"""DaskExecutor: Python-function tasks on a ``dask.distributed`` cluster.

Connects to a scheduler address, or starts a ``LocalCluster`` on loopback (one process per
core, one thread each). Each task is one Dask future running ``remote.run_task``; its end
comes back through the future's done callback (in Dask's callback thread) and is handed to
the engine's loop. ``capacity`` is the cluster's: threads, memory limits and the ``GPU``
resource its workers advertise. Requests are mapped to the worker resources the cluster
advertises (``CPU``, ``GPU``, ``MEMORY``), so Dask places a task only where it fits.

A running Python call cannot be interrupted in a Dask worker thread: cancel, time limits
and preemption end the task at once for hexflow and release its future, but the call runs
to its end on the worker and its result is dropped.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hexflow.errors import ExecutorError
from hexflow.executors.base import Launch, Report, TaskEnded, TaskStarted
from hexflow.model import Resources, TaskKind

log = logging.getLogger("hexflow.executors.dask")

# hexflow request -> the Dask worker resource it is mapped to (when workers advertise it)
RESOURCE_NAMES = {"cpus": "CPU", "gpus": "GPU", "memory": "MEMORY"}


@dataclass(eq=False)
class _Active:
    launch: Launch
    future: Any
    timer: asyncio.TimerHandle | None = None


class DaskExecutor:
    name = "dask"
    places_work = False  # a task must fit one worker; the engine bounds the total

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        local_directory: str | None = None,
        connect_timeout: float = 60.0,
    ) -> None:
        self.address = address
        self._workers = workers
        self._local_directory = local_directory
        self._timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._active: dict[int, _Active] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._report: Report | None = None
        client = self._connect()  # the capacity is the cluster's: the engine reads it first
        self.capacity, self.worker_resources = cluster_shape(client.scheduler_info())

    # ------------------------------------------------------------------ protocol
    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self._loop = loop
        self._report = report
        if self._client is None:
            self._connect()

    def submit(self, launch: Launch) -> None:
        assert self._loop is not None and self._report is not None
        spec = launch.spec
        if spec.kind is not TaskKind.PYTHON:
            raise ExecutorError(
                f"task {spec.name!r} is a {spec.kind.value} task: the dask executor runs "
                "Python functions only",
                hint="run commands on the local or slurm executor (HEXFLOW_EXECUTOR)",
                task=spec.id,
            )
        if getattr(spec, "image", None):
            raise ExecutorError(
                f"task {spec.name!r} names a container image: the dask executor runs Python "
                "functions in its workers' own environment",
                task=spec.id,
            )
        resources = dask_resources(spec.resources, self.worker_resources)
        job = (
            launch.token,
            spec.kind.value,
            spec.payload,
            dict(launch.inputs),
            dict(launch.env),
            launch.cwd,
            launch.stdout,
            launch.stderr,
            None,
            False,
        )
        key = f"hexflow-{launch.run_id}-{spec.id}-{launch.attempt}-{uuid.uuid4().hex[:8]}"
        from hexflow.executors.dask.remote import run_task

        future = self._client.submit(
            run_task, job, key=key, pure=False, resources=resources or None, retries=0
        )
        active = _Active(launch, future)
        self._active[launch.token] = active
        limit = spec.time_limit
        if limit is not None:
            active.timer = self._loop.call_later(limit[0], self._time_up, launch.token, limit)
        token = launch.token
        future.add_done_callback(lambda fut: self._done_in_thread(token, fut))
        self._report(TaskStarted(token, f"dask:{key}", time.time()))

    def cancel(self, token: int, reason: str = "cancelled") -> None:
        message = "cancelled by request" if reason == "cancelled" else reason
        self._abandon(token, reason, message)

    def preempt(self, token: int, grace: float) -> None:
        """A Dask worker cannot tell a running call to stop: the task may finish within
        ``grace``; after it, it ends ``preempted`` and its call is abandoned."""
        if token in self._active:
            assert self._loop is not None
            self._loop.call_later(grace, self._preempt_now, token, self._active[token])

    def reap(self, worker: str) -> bool:
        return False  # a dead engine's futures were released by its scheduler

    def shutdown(self) -> None:
        for active in self._active.values():
            if active.timer is not None:
                active.timer.cancel()
        self._active.clear()
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    # ------------------------------------------------------------------ internals
    def _connect(self) -> Any:
        # an optional dependency, typed as Any whether or not it is installed
        distributed: Any = importlib.import_module("distributed")
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        if self.address is None:
            self._cluster = LocalCluster(
                n_workers=self._workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                worker_dashboard_address="127.0.0.1:0",
                local_directory=self._local_directory,
            )
            self._client = Client(self._cluster, timeout=self._timeout)
        else:
            try:
                self._client = Client(self.address, timeout=self._timeout)
            except OSError as exc:
                raise ExecutorError(
                    f"cannot reach the Dask scheduler at {self.address}: {exc}",
                    hint="start it (dask scheduler / dask worker), or unset "
                    "HEXFLOW_DASK_SCHEDULER to run a local Dask cluster",
                    address=self.address,
                ) from None
        try:
            self._client.wait_for_workers(1, timeout=self._timeout)
        except TimeoutError:
            raise ExecutorError(
                f"the Dask scheduler at {self.address} has no workers",
                hint="start some with `dask worker ADDRESS`",
                address=self.address,
            ) from None
        return self._client

    def _done_in_thread(self, token: int, future: Any) -> None:
        """Dask's callback thread: fetch what the future holds, hand it to the loop."""
        try:
            if future.status == "finished":
                result: tuple[str, Any] = ("answer", future.result())
            elif future.status == "cancelled":
                return  # hexflow cancelled it and has ended the task already
            else:
                exc = future.exception()
                result = ("lost", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the client went away: the task is lost
            result = ("lost", f"{type(exc).__name__}: {exc}")
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._ended, token, future, result)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _ended(self, token: int, future: Any, result: tuple[str, Any]) -> None:
        active = self._active.get(token)
        if active is None or active.future is not future:
            return
        kind, value = result
        if kind == "answer":
            self._end(answer_event(value))
        else:
            self._end(
                TaskEnded(
                    token,
                    ok=False,
                    ended_at=time.time(),
                    reason="worker_lost",
                    error=f"the Dask cluster lost the task: {value}",
                )
            )

    def _time_up(self, token: int, limit: tuple[float, str]) -> None:
        seconds, which = limit
        self._abandon(token, which, f"killed after exceeding its {which} of {seconds:g}s")

    def _preempt_now(self, token: int, active: _Active) -> None:
        if self._active.get(token) is active:
            self._abandon(token, "preempted", "preempted to make room for higher-priority work")

    def _abandon(self, token: int, reason: str, message: str) -> None:
        active = self._active.get(token)
        if active is None:
            return
        assert self._loop is not None
        self._loop.run_in_executor(None, _release, active.future)
        self._end(
            TaskEnded(
                token,
                ok=False,
                ended_at=time.time(),
                reason=reason,
                error=f"{message} (its call is abandoned on its Dask worker)",
            )
        )

    def _end(self, event: TaskEnded) -> None:
        assert self._report is not None
        active = self._active.pop(event.token, None)
        if active is None:
            return
        if active.timer is not None:
            active.timer.cancel()
        self._report(event)


def _release(future: Any) -> None:
    try:
        future.cancel()
    except Exception as exc:  # noqa: BLE001 - best effort: the client may be closing
        log.debug("could not cancel %s: %s", future, exc)


def answer_event(answer: tuple[Any, ...]) -> TaskEnded:
    """A local-worker answer tuple (Python task) as the engine's event."""
    token, ok, blob, err_type, message, tb, _start, code, spawned, join = answer
    now = time.time()
    if ok:
        return TaskEnded(token, ok=True, ended_at=now, result=blob, spawned=spawned, join=join)
    return TaskEnded(
        token,
        ok=False,
        ended_at=now,
        result=blob,  # the pickled exception, when it pickles
        exit_code=code,
        reason="error",
        error=message,
        traceback=tb,
        extra={"error_type": err_type},
    )


def cluster_shape(info: Mapping[str, Any]) -> tuple[Resources, dict[str, float]]:
    """The capacity of a cluster (``Client.scheduler_info()``) and, for each resource its
    workers advertise, the most one worker has."""
    workers = list(info.get("workers", {}).values())
    most: dict[str, float] = {}
    for w in workers:
        for name, amount in (w.get("resources") or {}).items():
            most[name] = max(most.get(name, 0.0), float(amount))
    cpus = sum(float((w.get("resources") or {}).get("CPU", w.get("nthreads", 1))) for w in workers)
    memory = sum(int(w.get("memory_limit") or 0) for w in workers)
    if "MEMORY" in most:
        memory = sum(int((w.get("resources") or {}).get("MEMORY", 0)) for w in workers)
    if not memory or any(not w.get("memory_limit") for w in workers):
        memory = 2**62  # a worker without a memory limit: the engine does not count memory
    gpus = sum(int((w.get("resources") or {}).get("GPU", 0)) for w in workers)
    return Resources(cpus=cpus or 1.0, memory=memory, gpus=gpus), most


def dask_resources(request: Resources, advertised: Mapping[str, float]) -> dict[str, float]:
    """The worker resources a task asks Dask for: only those the cluster advertises (a
    resource no worker has would keep the task waiting forever); refused if no single
    worker has enough."""
    wanted = {
        RESOURCE_NAMES["cpus"]: request.cpus,
        RESOURCE_NAMES["gpus"]: float(request.gpus),
        RESOURCE_NAMES["memory"]: float(request.memory),
    }
    asked = {name: amount for name, amount in wanted.items() if amount and name in advertised}
    for name, amount in asked.items():
        if amount > advertised[name]:
            raise ExecutorError(
                f"no Dask worker has {name}={amount:g}: the largest has {advertised[name]:g}",
                hint="lower the request, or start workers with more (dask worker --resources)",
                resource=name,
            )
    return asked


__all__ = ["RESOURCE_NAMES", "DaskExecutor", "answer_event", "cluster_shape", "dask_resources"]
