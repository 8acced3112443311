"""DaskExecutor: Python-function tasks on a ``dask.distributed`` cluster.

Connects to a scheduler address, or starts a ``LocalCluster`` on loopback (one process per
core, one thread each). Each task is one Dask future running ``remote.run_task``; its end
comes back through the future's done callback (in Dask's callback thread) and is handed to
the engine's loop. ``capacity`` is the cluster's: threads, memory limits and the ``GPU``
resource its workers advertise. Requests are mapped to the worker resources the cluster
advertises (``CPU``, ``GPU``, ``MEMORY``), so Dask places a task only where it fits.

Tasks started in one engine turn are handed to Dask together (one ``client.map`` per
shape of request: one message to the scheduler, not one per task), and the engine may hand
over ``backlog`` times the cluster's threads (Dask queues them, in QoS order through Dask's
``priority``), so that a worker that frees up never waits for a round trip through the
engine.

A running Python call cannot be interrupted in a Dask worker thread: cancel, time limits
and preemption end the task at once for hexflow and release its future, but the call runs
to its end on the worker and its result is dropped.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
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
        backlog: float = 16.0,
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
        self._batch: list[tuple[Launch, tuple[Any, ...], str, dict[str, float]]] = []
        self._finished: list[tuple[int, Any]] = []  # futures done, results not fetched yet
        self._done_lock = threading.Lock()
        self._done_ready = threading.Condition(self._done_lock)
        self._closing = False
        self._fetcher: threading.Thread | None = None
        client = self._connect()  # the capacity is the cluster's: the engine reads it first
        capacity, self.worker_resources = cluster_shape(client.scheduler_info())
        self.threads = capacity.cpus  # what the cluster runs at once
        # cpus: what may be handed over at once, queued in Dask beyond its threads
        self.capacity = Resources(
            cpus=capacity.cpus * max(1.0, backlog), memory=capacity.memory, gpus=capacity.gpus
        )

    # ------------------------------------------------------------------ protocol
    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self._loop = loop
        self._report = report
        if self._client is None:
            self._connect()
        with self._done_lock:
            self._closing = False
        self._fetcher = threading.Thread(
            target=self._fetch_forever, name="hexflow-dask-results", daemon=True
        )
        self._fetcher.start()

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
        if not self._batch:
            self._loop.call_soon(self._flush)
        self._batch.append((launch, job, key, resources))

    def _flush(self) -> None:
        """Hand this turn's launches to Dask: one ``client.map`` per shape of request."""
        from hexflow.executors.dask.remote import run_task

        batch, self._batch = self._batch, []
        groups: dict[tuple[Any, ...], list[tuple[Launch, tuple[Any, ...], str]]] = {}
        for launch, job, key, resources in batch:
            shape = (launch.spec.qos.priority, tuple(sorted(resources.items())))
            groups.setdefault(shape, []).append((launch, job, key))
        assert self._loop is not None and self._report is not None
        now = time.time()
        for (priority, resources), items in groups.items():
            futures = self._client.map(
                run_task,
                [job for _, job, _ in items],
                key=[key for _, _, key in items],
                pure=False,
                resources=dict(resources) or None,
                retries=0,
                priority=priority,
            )
            for (launch, _, key), future in zip(items, futures, strict=True):
                active = _Active(launch, future)
                token = launch.token
                self._active[token] = active
                limit = launch.spec.time_limit
                if limit is not None:
                    active.timer = self._loop.call_later(limit[0], self._time_up, token, limit)
                future.add_done_callback(lambda fut, t=token: self._done_in_thread(t, fut))
                self._report(TaskStarted(token, f"dask:{key}", now))

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
        self._batch.clear()
        with self._done_lock:
            self._closing = True
            self._finished.clear()
            self._done_ready.notify()
        if self._fetcher is not None:
            self._fetcher.join(10)
            self._fetcher = None
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
        """Dask's callback thread: note the future; the fetcher gathers results in bulk."""
        with self._done_lock:
            self._finished.append((token, future))
            self._done_ready.notify()

    def _fetch_forever(self) -> None:
        """A thread: take the futures that ended since the last look, gather the results
        of the successful ones in one ``client.gather`` (one request per worker, not one
        per task), and hand them all to the loop at once."""
        while True:
            with self._done_lock:
                while not self._finished and not self._closing:
                    self._done_ready.wait()
                if self._closing:
                    return
                finished, self._finished = self._finished, []
            ended: list[tuple[int, Any, tuple[str, Any]]] = []
            good = [(t, f) for t, f in finished if f.status == "finished"]
            try:
                values = self._client.gather([f for _, f in good]) if good else []
                ended += [(t, f, ("answer", v)) for (t, f), v in zip(good, values, strict=True)]
            except Exception:  # noqa: BLE001 - one at a time then, to tell which failed
                ended += [(t, f, self._outcome(f)) for t, f in good]
            ended += [(t, f, self._outcome(f)) for t, f in finished if f.status != "finished"]
            loop = self._loop
            if loop is None or loop.is_closed():
                continue
            try:
                loop.call_soon_threadsafe(self._ended_many, ended)
            except RuntimeError:  # the loop closed meanwhile
                pass

    @staticmethod
    def _outcome(future: Any) -> tuple[str, Any]:
        try:
            if future.status == "finished":
                return ("answer", future.result())
            if future.status == "cancelled":
                return ("cancelled", None)  # hexflow cancelled it and has ended the task
            exc = future.exception()
            return ("lost", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the client went away: the task is lost
            return ("lost", f"{type(exc).__name__}: {exc}")

    def _ended_many(self, ended: list[tuple[int, Any, tuple[str, Any]]]) -> None:
        for token, future, result in ended:
            if result[0] != "cancelled":
                self._ended(token, future, result)

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
        for i, (launch, *_) in enumerate(self._batch):
            if launch.token == token:  # not handed to Dask yet: it ends here
                del self._batch[i]
                assert self._report is not None
                self._report(
                    TaskEnded(token, ok=False, ended_at=time.time(), reason=reason, error=message)
                )
                return
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
