"""Workflow: the context in which task calls become a DAG, and ``run()`` executes it
embedded (engine in this process, SQLite under ``.hexflow/``) until every task has ended.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexflow.errors import HexflowError, SpecError
from hexflow.executors import taskcontext
from hexflow.flow.decorators import TaskFunction
from hexflow.flow.futures import TaskFuture
from hexflow.flow.runtime import start_run
from hexflow.flow.serialize import dumps_call, replace_futures
from hexflow.model import RunRecord, RunState, TaskKind, TaskRecord, TaskSpec
from hexflow.model.spec import dedupe, shell_command
from hexflow.settings import Settings

_current: contextvars.ContextVar[Workflow | None] = contextvars.ContextVar(
    "hexflow_workflow", default=None
)
_NAME_OK = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")  # no leading dot: names are paths


def current_workflow(task_name: str) -> Workflow:
    wf = _current.get()
    if wf is None:
        context = taskcontext.current()
        if context is not None:  # called inside a running task: the DAG grows
            if context.workflow is None:
                context.workflow = SpawnedTasks(context)
            spawned: Workflow = context.workflow
            return spawned
        raise HexflowError(
            f"task {task_name!r} was called outside a workflow",
            hint="call tasks inside `with hx.Workflow('name') as wf:`; "
            "to call the plain function use `.fn(...)`",
        )
    return wf


@dataclass
class Run:
    """The outcome of ``Workflow.run()``: the run record and every task's final record."""

    record: RunRecord
    tasks: dict[str, TaskRecord] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state.value

    @property
    def ok(self) -> bool:
        return self.record.state is RunState.SUCCEEDED

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rec in self.tasks.values():
            out[rec.state.value] = out.get(rec.state.value, 0) + 1
        return out

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.state} {self.counts()}>"


class Workflow:
    def __init__(
        self,
        name: str,
        *,
        settings: Settings | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise SpecError("a workflow needs a non-empty name", field="name")
        self.name = name
        self.settings = settings
        self.workdir = Path(workdir) if workdir else None
        self.specs: dict[str, TaskSpec] = {}
        self._calls: dict[int, list[str]] = {}
        self._counters: dict[str, int] = {}
        self._token: contextvars.Token[Workflow | None] | None = None
        self._result: Run | None = None
        self.remote: Any = None  # the RemoteRun once submitted to a server (``submit``)

    # ---------------------------------------------------------------- building
    def __enter__(self) -> Workflow:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def _new_id(self, name: str) -> str:
        n = self._counters.get(name, 0) + 1
        self._counters[name] = n
        return f"{name}-{n}"

    def _future_id(self, value: Any) -> str | None:
        if isinstance(value, TaskFuture):
            if value.workflow is not self:
                raise SpecError(
                    f"task {value.name!r} belongs to workflow {value.workflow.name!r}, "
                    f"not {self.name!r}",
                    hint="pass futures only between tasks of the same workflow",
                )
            return value.task_id
        return None

    def _after_ids(self, after: Iterable[Any], task_name: str) -> list[str]:
        ids: list[str] = []
        for item in after:
            if isinstance(item, TaskFuture):
                ids.append(self._future_id(item) or "")
            elif isinstance(item, TaskFunction):
                ids.extend(self._calls.get(id(item.fn), []))
            elif isinstance(item, str) and item in self.specs:
                ids.append(item)
            else:
                raise SpecError(
                    f"task {task_name!r}: after= takes futures, task functions or task ids, "
                    f"got {item!r}",
                    field="after",
                )
        return ids

    def add_call(
        self, tf: TaskFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskFuture:
        if self._result is not None:
            raise HexflowError(
                f"workflow {self.name!r} has already run (run {self._result.id})",
                hint="build a new hx.Workflow for another run",
            )
        opts = tf.options
        task_id = self._new_id(tf.name)
        found: list[str] = []
        args2 = replace_futures(args, found, self._future_id)
        kwargs2 = replace_futures(kwargs, found, self._future_id)
        deps = dedupe([*found, *self._after_ids(opts.after, tf.name)])
        common: dict[str, Any] = dict(
            id=task_id,
            name=task_id,
            resources=opts.resources,
            qos=opts.qos,
            deps=deps,
            inputs=dedupe(found),
            env=opts.env,
            retry=opts.retry,
            timeout=opts.timeout,
            deadline=opts.deadline,
            cache=opts.cache,
            checkpoint=opts.checkpoint,
            tags={"function": tf.name, **opts.tags},
            image=opts.image,
            mounts=opts.mounts,
            reads=opts.reads,
            writes=opts.writes,
            sites=opts.sites,
            gang=opts.gang,
            exclusive=opts.exclusive,
        )
        if tf.kind is TaskKind.SHELL_BUILDER and not found:
            # The command needs no upstream result: build it now, so errors show up here.
            argv = shell_command(tf.fn(*args, **kwargs), opts.use_shell, task_id)
            spec = TaskSpec(kind=TaskKind.SHELL, command=argv, shell=opts.use_shell, **common)
        else:
            payload = dumps_call(tf.blob, args2, kwargs2, task_id)
            salt = tf.identity if opts.cache else ""
            spec = TaskSpec(kind=tf.kind, payload=payload, cache_salt=salt, **common)
        self.add_spec(spec)
        self._calls.setdefault(id(tf.fn), []).append(task_id)
        return TaskFuture(self, task_id, task_id)

    def add_spec(self, spec: TaskSpec) -> TaskFuture:
        """Add a ready-made spec (YAML loader, programs building DAGs by hand)."""
        if spec.id in self.specs:
            raise SpecError(f"duplicate task id {spec.id!r}", hint="give each task a unique name")
        if not _NAME_OK.match(spec.id):
            raise SpecError(
                f"task id {spec.id!r} may hold only letters, digits, '_', '.' and '-', "
                "and may not start with '.'",
                field="name",
            )
        for dep in spec.deps:
            if dep not in self.specs:
                raise SpecError(
                    f"task {spec.name!r} depends on unknown task {dep!r}",
                    hint="define the task it depends on first",
                    field="deps",
                )
        self.specs[spec.id] = spec
        return TaskFuture(self, spec.id, spec.name)

    def future(self, task_id: str) -> TaskFuture:
        if task_id not in self.specs:
            raise SpecError(f"no task {task_id!r} in workflow {self.name!r}")
        return TaskFuture(self, task_id, task_id)

    # ---------------------------------------------------------------- running
    def run(self, *, settings: Settings | None = None) -> Run:
        """Run every task embedded, here, until all have ended; state is persisted as it goes.

        Returns a ``Run``; failures do not raise here — ask the futures, or ``run.ok``.
        """
        if self._result is not None:
            raise HexflowError(
                f"workflow {self.name!r} has already run (run {self._result.id})",
                hint="`hexflow resume RUN` continues an interrupted run",
            )
        if not self.specs:
            raise SpecError(
                f"workflow {self.name!r} has no tasks", hint="call some tasks inside it"
            )
        settings = settings or self.settings or Settings.from_env()
        record, tasks = start_run(
            settings, self.name, list(self.specs.values()), workdir=self.workdir
        )
        self._result = Run(record=record, tasks={t.id: t for t in tasks})
        return self._result

    def submit(
        self, client: Any, *, project: str | None = None, idempotency_key: str | None = None
    ) -> Any:
        """Send the workflow to a hexflow server (``hexflow.Client``) instead of running it
        here; returns the run's handle (``RemoteRun``), and the futures of this workflow
        then resolve remotely: ``future.result()`` waits for the task on the server."""
        if self._result is not None or self.remote is not None:
            done = self._result.id if self._result else self.remote.id
            raise HexflowError(
                f"workflow {self.name!r} has already run (run {done})",
                hint="build a new hx.Workflow for another run",
            )
        if not self.specs:
            raise SpecError(
                f"workflow {self.name!r} has no tasks", hint="call some tasks inside it"
            )
        self.remote = client.submit_workflow(self, project=project, idempotency_key=idempotency_key)
        return self.remote

    def task_record(self, task_id: str) -> TaskRecord | None:
        return self._result.tasks.get(task_id) if self._result else None

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return self.specs


class SpawnedTasks(Workflow):
    """Task calls made inside a running task: they become new tasks of the same run.

    Ids are prefixed with the parent's id (``parent.name-1``). The parent may return one
    of these futures: its own result is then that task's result, once it has run.
    """

    def __init__(self, context: taskcontext.TaskContext) -> None:
        super().__init__(f"spawned-by-{context.task_id}")
        self._context = context

    def _new_id(self, name: str) -> str:
        return f"{self._context.task_id}.{super()._new_id(name)}"

    def add_spec(self, spec: TaskSpec) -> TaskFuture:
        future = super().add_spec(spec)
        self._context.spawned.append(spec)
        return future

    def run(self, *, settings: Settings | None = None) -> Run:
        raise HexflowError(
            "tasks spawned inside a task run in the parent's run, not on their own",
            hint="return the spawned future from the task to wait for its result",
        )
