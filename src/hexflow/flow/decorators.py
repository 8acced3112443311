"""``@task`` and ``@shell``: turn functions into task factories that return futures.

Options are checked when the decorator runs, so a bad memory string or an unknown QoS is
reported at definition time with the field that is wrong.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from hexflow.errors import SpecError
from hexflow.flow.serialize import code_identity, dumps_function
from hexflow.model import QoS, Resources, RetryPolicy, TaskKind, parse_duration
from hexflow.model.container import check_container_task, check_image, normalize_mounts
from hexflow.model.datasets import Dataset, task_datasets
from hexflow.model.sites import site_names

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskOptions:
    resources: Resources
    qos: QoS
    retry: RetryPolicy
    timeout: float | None
    deadline: float | None
    cache: bool
    checkpoint: bool
    after: tuple[Any, ...]
    env: Mapping[str, str]
    name: str | None
    use_shell: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    mounts: tuple[str, ...] = ()
    reads: tuple[Dataset, ...] = ()  # ``inputs=``: dataset versions staged for the task
    writes: tuple[Dataset, ...] = ()  # ``outputs=``: datasets it makes a new version of
    sites: tuple[str, ...] = ()  # ``site=``/``sites=``: where it may run (empty: anywhere)
    gang: str | None = None  # start together with the other tasks of this gang
    exclusive: bool = False  # hold the machine (its nodes) whole


def build_options(
    *,
    cpus: float = 1,
    memory: int | str | None = None,
    gpus: int = 0,
    nodes: int = 1,
    walltime: float | str | None = None,
    qos: QoS | str | None = None,
    deadline: float | str | None = None,
    timeout: float | str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    after: Iterable[Any] = (),
    cache: bool = False,
    checkpoint: bool = False,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    use_shell: bool = False,
    tags: Mapping[str, str] | None = None,
    image: str | None = None,
    mounts: Iterable[str] | None = None,
    inputs: Iterable[str | Dataset] = (),
    outputs: Iterable[str | Dataset] = (),
    site: str | None = None,
    sites: Iterable[str] | None = None,
    gang: str | None = None,
    exclusive: bool = False,
) -> TaskOptions:
    resources = Resources.parse(cpus=cpus, memory=memory, gpus=gpus, nodes=nodes, walltime=walltime)
    if image is not None:
        check_image(image, name)
    mount_list = normalize_mounts(mounts, name)
    check_container_task(name, image, mount_list, resources.memory, env or {})
    reads, writes = task_datasets(name or "task", inputs, outputs)
    return TaskOptions(
        resources=resources,
        qos=QoS.parse(qos),
        retry=RetryPolicy(retries=retries, backoff=backoff),
        timeout=parse_duration(timeout, "timeout"),
        deadline=parse_duration(deadline, "deadline"),
        cache=bool(cache),
        checkpoint=bool(checkpoint),
        after=tuple(after),
        env=dict(env or {}),
        name=name,
        use_shell=use_shell,
        tags=dict(tags or {}),
        image=image,
        mounts=mount_list,
        reads=reads,
        writes=writes,
        sites=site_names(
            site, list(sites) if sites is not None and not isinstance(sites, str) else sites
        ),
        gang=gang,
        exclusive=bool(exclusive),
    )


class TaskFunction(Generic[P, R]):
    """A decorated function. Calling it inside ``with Workflow(...)`` adds a task."""

    def __init__(self, fn: Callable[P, R], kind: TaskKind, options: TaskOptions) -> None:
        self.fn = fn
        self.kind = kind
        self.options = options
        self.name: str = str(options.name or getattr(fn, "__name__", "task"))
        functools.update_wrapper(self, fn)
        self._blob: bytes | None = None
        self._identity: str | None = None

    @property
    def blob(self) -> bytes:
        if self._blob is None:
            self._blob = dumps_function(self.fn, self.name)
        return self._blob

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = code_identity(self.fn, self.blob)
        return self._identity

    def with_options(self, **overrides: Any) -> TaskFunction[P, R]:
        """A copy with some options changed: ``simulate.with_options(cpus=4, after=[a])(1)``."""
        current = self.options
        base = {
            "cpus": current.resources.cpus,
            "memory": current.resources.memory,
            "gpus": current.resources.gpus,
            "nodes": current.resources.nodes,
            "walltime": current.resources.walltime,
            "qos": current.qos,
            "deadline": current.deadline,
            "timeout": current.timeout,
            "retries": current.retry.retries,
            "backoff": current.retry.backoff,
            "after": current.after,
            "cache": current.cache,
            "checkpoint": current.checkpoint,
            "env": current.env,
            "name": current.name,
            "use_shell": current.use_shell,
            "tags": current.tags,
            "image": current.image,
            "mounts": current.mounts,
            "inputs": current.reads,
            "outputs": current.writes,
            "sites": current.sites or None,
            "gang": current.gang,
            "exclusive": current.exclusive,
        }
        check_option_names(overrides)
        if "site" in overrides:  # a pin replaces the list, not joins it
            base["sites"] = None
        copy = TaskFunction(self.fn, self.kind, build_options(**{**base, **overrides}))
        copy._blob, copy._identity = self._blob, self._identity
        return copy

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        from hexflow.flow.workflow import current_workflow

        return current_workflow(self.name).add_call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<hexflow {self.kind.value} task {self.name}>"


_OPTION_NAMES = frozenset(inspect.signature(build_options).parameters)


def check_option_names(names: Iterable[str]) -> None:
    """Reject unknown task options with the closest valid name."""
    for name in names:
        if name not in _OPTION_NAMES:
            close = difflib.get_close_matches(name, sorted(_OPTION_NAMES), n=1)
            raise SpecError(
                f"unknown task option {name!r}"
                + (f"; did you mean {close[0]!r}?" if close else ""),
                hint=f"valid options: {', '.join(sorted(_OPTION_NAMES))}",
                field=name,
            )


def _decorator(kind: TaskKind, fn: Callable[..., Any] | None, kw: dict[str, Any]) -> Any:
    if fn is not None and not callable(fn):
        raise SpecError(
            f"@task/@shell got {fn!r} where a function or keyword options were expected",
            hint="write @hx.task or @hx.task(cpus=2), not @hx.task(2)",
        )
    check_option_names(kw)
    options = build_options(**kw)

    def wrap(f: Callable[..., Any]) -> TaskFunction[Any, Any]:
        if not callable(f):
            which = "shell" if kind is TaskKind.SHELL_BUILDER else "task"
            raise SpecError(f"@{which} decorates a function, got {f!r}")
        return TaskFunction(f, kind, options)

    return wrap(fn) if fn is not None else wrap


@overload
def task(fn: Callable[P, R]) -> TaskFunction[P, R]: ...
@overload
def task(**options: Any) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...
def task(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Declare a Python function task.

    Options: cpus, memory ("512M"), gpus, nodes, walltime ("10m"), qos (realtime, urgent,
    interactive, regular, preempt), deadline, timeout, retries, backoff, after=[futures],
    cache, checkpoint, env, name, image (run in a container, docs/containers.md), mounts,
    inputs=["raw@3"] and outputs=["clean"] (datasets staged for it and registered from what
    it writes: ``hx.input_path``, ``hx.output_path``; docs/data.md), site="perlmutter" or
    sites=["perlmutter", "local"] (where it may run; docs/sites.md).
    """
    return _decorator(TaskKind.PYTHON, fn, options)


@overload
def shell(fn: Callable[P, R]) -> TaskFunction[P, R]: ...
@overload
def shell(**options: Any) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...
def shell(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Declare a shell task: the function returns the command line (a list of arguments).

    The command runs as an argument list, never through a shell, unless ``use_shell=True``
    (then return one string). Same options as ``task``.
    """
    return _decorator(TaskKind.SHELL_BUILDER, fn, options)
