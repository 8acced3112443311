"""Embedded runtime: builds the store, executor and engine from Settings, and the run
operations the CLI and the Python API share (start, resume, cancel, inspect).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from hexflow.data.taskdata import TaskData
from hexflow.data.tiers import StorageConfig
from hexflow.engine import Engine, Progress, RunPaths
from hexflow.engine.taskhooks import TaskHook
from hexflow.model.ids import new_id

__all__ = ["Progress"]  # re-exported for the CLI's progress bar
from hexflow.engine.lease import owner_alive
from hexflow.engine.paths import run_home
from hexflow.executors.containers.planning import ContainerConfig
from hexflow.executors.local import LocalExecutor
from hexflow.flow.backends import remote_executor
from hexflow.model import RunRecord, RunState, TaskRecord, TaskSpec, TaskState
from hexflow.scheduler.decisions import PolicyConfig
from hexflow.settings import Settings
from hexflow.store import Store, open_store

ProgressFactory = Callable[[str, int], Callable[[Progress], None]]
# Set by the CLI so that ``wf.run()`` inside ``hexflow run script.py`` shows its progress bar.
progress_factory: contextvars.ContextVar[ProgressFactory | None] = contextvars.ContextVar(
    "hexflow_progress_factory", default=None
)


def new_run_id() -> str:
    return new_id(12)


L = TypeVar("L", bound=LocalExecutor)


def local_executor(settings: Settings, kind: type[L] = LocalExecutor) -> L:  # type: ignore[assignment]
    """This machine's executor as the settings describe it (``kind``: a WarmLocalExecutor
    for one whose idle workers outlive each run; ``close`` it when done)."""
    return kind(
        cpus=settings.cpus,
        memory=settings.memory,
        gpus=settings.gpus,
        scratch_dir=str(settings.home / "scratch"),
        kill_grace=settings.kill_grace,
        containers=container_config(settings),
    )


def make_store(settings: Settings) -> Store:
    # The home holds the database, logs and checkpoints: readable by its owner only.
    if not settings.home.exists():
        settings.home.mkdir(mode=0o700, parents=True)
    return open_store(settings.db_url)


def make_engine(
    settings: Settings,
    store: Store,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    task_hook: TaskHook | None = None,
    local: LocalExecutor | None = None,
) -> Engine:
    """``task_hook``: the datasets of tasks (default: ``task_data(settings)``); ``local``:
    the executor to use when the settings name no site and no remote executor (a server's
    driver thread passes its warm one; default: a new LocalExecutor)."""
    from hexflow.flow.sites import site_set

    sites = site_set(settings)  # HEXFLOW_SITES: an executor per site, with failover
    executor = (
        (sites.bindings[0].executor if sites else None)
        or remote_executor(settings)
        or (local if local is not None else local_executor(settings))
    )
    off = settings.policy_off
    policy = PolicyConfig(
        fair_share="fair_share" not in off,
        edf="edf" not in off,
        admission="admission" not in off,
        backfill="backfill" not in off,
        preemption="preemption" not in off,
        preempt_grace=settings.preempt_grace,
    )
    return Engine(
        store,
        executor,
        on_progress=on_progress,
        policy=policy,
        task_hook=task_hook or task_data(settings),
        sites=sites,
    )


def task_data(settings: Settings) -> TaskData:
    """The engine's hook for tasks with ``inputs=``/``outputs=`` datasets (docs/data.md):
    the catalog in the run's database, the tiers of the storage settings (read only when
    a task declares datasets)."""
    from hexflow.data.config import load_storage

    def storage() -> StorageConfig:
        path = os.environ.get("HEXFLOW_STORAGE")
        return load_storage(settings.home, Path(path) if path else None)

    return TaskData(settings.db_url, storage)


def container_config(settings: Settings) -> ContainerConfig:
    """How this site runs container tasks (runtime, network, the roots mounts may use)."""
    return ContainerConfig(
        runtime=settings.container_runtime,
        network=settings.container_network or None,
        mount_roots=tuple(str(p) for p in settings.allowed_mount_roots),
    )


def start_run(
    settings: Settings,
    name: str,
    specs: Sequence[TaskSpec],
    *,
    workdir: Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    store: Store | None = None,
) -> tuple[RunRecord, list[TaskRecord]]:
    """Persist a new run and drive it to completion here; returns the final records."""
    own_store = store is None
    store = store or make_store(settings)
    try:
        engine = make_engine(settings, store)
        run = engine.create_run(
            name,
            specs,
            workdir=str(workdir or settings.workdir),
            run_id=new_run_id(),
            config={"home": str(settings.home)},
        )
        engine.on_progress = on_progress or _cli_progress(run.id, len(specs))
        final = _drive(engine, run.id)
        return final, list(engine.records.values())
    finally:
        if own_store:
            store.close()


def resume_run(
    settings: Settings,
    run_ref: str,
    *,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[RunRecord, list[TaskRecord]]:
    store = make_store(settings)
    try:
        run = store.get_run(run_ref)
        engine = make_engine(settings, store, on_progress)
        if on_progress is None:
            engine.on_progress = _cli_progress(run.id, -1)
        final = _drive(engine, run.id, retry_failed=retry_failed)
        return final, list(engine.records.values())
    finally:
        store.close()


def _drive(engine: Engine, run_id: str, *, retry_failed: bool = False) -> RunRecord:
    """``engine.run`` here, or on a helper thread when this thread already runs an event
    loop (a Jupyter kernel, an async program): ``wf.run()`` works in a notebook cell."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return engine.run(run_id, retry_failed=retry_failed)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hexflow-engine") as pool:
        return pool.submit(engine.run, run_id, retry_failed=retry_failed).result()


def cancel(settings: Settings, run_ref: str, task_ref: str | None = None) -> dict[str, object]:
    """Ask the engine driving the run to cancel; if none is alive, cancel in the store."""
    store = make_store(settings)
    try:
        run = store.get_run(run_ref)
        task_id = store.get_task(run.id, task_ref).id if task_ref else None
        if owner_alive(run.owner):
            store.request_cancel(run.id, task_id)
            return {"run_id": run.id, "task_id": task_id, "mode": "requested"}
        changed = _cancel_offline(store, run, task_id)
        return {"run_id": run.id, "task_id": task_id, "mode": "applied", "cancelled": changed}
    finally:
        store.close()


def _cancel_offline(store: Store, run: RunRecord, task_id: str | None) -> int:
    """No live engine: mark not-yet-finished tasks cancelled directly (write-ahead in one tx)."""
    records = {r.id: r for r in store.load_tasks(run.id)}
    targets = [task_id] if task_id else list(records)
    changed: list[TaskRecord] = []
    for tid in targets:
        rec = records[tid]
        if rec.state.terminal:
            continue
        rec.set_state(TaskState.CANCELLED)
        rec.reason, rec.error = "cancelled", "cancelled by request (no engine was running)"
        changed.append(rec)
    runs = []
    if task_id is None and not run.state.terminal:
        run.cancel_requested = True
        run.set_state(RunState.CANCELLED)
        runs.append(run)
    store.save(runs=runs, tasks=changed)
    return len(changed)


def log_paths(run: RunRecord, task: TaskRecord, attempt: int | None = None) -> tuple[Path, Path]:
    paths = RunPaths(run_home(run.workdir, run.config), run.id)
    n = attempt or max(task.attempt, 1)
    return paths.log(task.id, n, "out"), paths.log(task.id, n, "err")


def _cli_progress(run_id: str, total: int) -> Callable[[Progress], None] | None:
    factory = progress_factory.get()
    return factory(run_id, total) if factory else None
