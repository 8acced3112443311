"""TaskSpec: the immutable, serializable description of one task.

A spec holds no live Python objects: a Python task's function and arguments arrive as
``payload`` bytes (serialized by the flow layer), so the model stays pure and a spec can
be persisted and executed by another process after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hexflow.errors import SpecError
from hexflow.model._pickling import fast_state
from hexflow.model.container import check_container_task, check_image, normalize_mounts
from hexflow.model.datasets import Dataset
from hexflow.model.qos import QoS
from hexflow.model.resources import Resources


class TaskKind(StrEnum):
    PYTHON = "python"  # payload: (fn, args, kwargs) to call in a worker
    SHELL = "shell"  # command: argv (or one string when shell=True)
    SHELL_BUILDER = "shell_builder"  # payload builds the argv once inputs are known


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 0
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise SpecError(
                f"retries: expected a whole number >= 0, got {self.retries!r}", field="retries"
            )
        if self.backoff < 0 or self.max_backoff < 0:
            raise SpecError("retry backoff must not be negative", field="backoff")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        return float(min(self.max_backoff, self.backoff * (2 ** max(0, attempt - 1))))


@dataclass(frozen=True, slots=True)
class TaskSpec:
    id: str
    name: str
    kind: TaskKind
    resources: Resources = field(default_factory=Resources)
    qos: QoS = QoS.REGULAR
    deps: tuple[str, ...] = ()  # data dependencies and ``after=`` ordering, deduplicated
    inputs: tuple[str, ...] = ()  # the deps whose results are arguments (subset of deps)
    payload: bytes | None = None
    command: tuple[str, ...] | None = None
    shell: bool = False  # run ``command[0]`` through /bin/sh; only when the user asks
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    deadline: float | None = None  # seconds after the run starts by which it must finish
    cache: bool = False
    cache_salt: str = ""  # identity of the code for cache keys (hash of the source)
    checkpoint: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None  # run inside this container image (executors/containers)
    mounts: tuple[str, ...] = ()  # bind mounts of a container task, "src:/dst:ro|rw"
    sites: tuple[str, ...] = ()  # the sites it may run at (one: pinned); empty: any site
    reads: tuple[Dataset, ...] = ()  # dataset versions staged for it (``inputs=``)
    writes: tuple[Dataset, ...] = ()  # datasets it makes a new version of (``outputs=``)
    gang: str | None = None  # co-scheduling: tasks of one gang start together or not at all
    exclusive: bool = False  # holds its nodes whole (no other task shares them)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise SpecError("task id must be a non-empty string", field="id")
        if self.kind is TaskKind.SHELL:
            if not self.command or not all(isinstance(a, str) for a in self.command):
                raise SpecError(
                    f"task {self.name}: a shell task needs a command",
                    hint="give `command:` as a list of arguments or a string",
                    task=self.name,
                    field="command",
                )
            if self.shell and len(self.command) != 1:
                raise SpecError(
                    f"task {self.name}: shell=True takes the command as one string",
                    task=self.name,
                    field="command",
                )
        elif self.payload is None:
            raise SpecError(f"task {self.name}: a {self.kind.value} task needs a payload")
        if self.resources.cpus <= 0:
            raise SpecError(
                f"task {self.name}: cpus must be more than 0, got {self.resources.cpus:g}",
                hint="a task needs some share of a core, e.g. cpus=0.5",
                task=self.name,
                field="cpus",
            )
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
                raise SpecError(
                    f"task {self.name}: env entries must be NAME: 'text', got {key!r}: {value!r}",
                    hint="quote numbers (\"2\"); names may not be empty or hold '='",
                    task=self.name,
                    field="env",
                )
            if "\0" in key or "\0" in value:
                raise SpecError(f"task {self.name}: env {key!r} holds a NUL byte", field="env")
        if self.command and any("\0" in arg for arg in self.command):
            raise SpecError(f"task {self.name}: the command holds a NUL byte", field="command")
        if self.timeout is not None and self.timeout <= 0:
            raise SpecError(f"task {self.name}: timeout must be positive", field="timeout")
        if self.id in self.deps:
            raise SpecError(
                f"task {self.name} depends on itself",
                hint="remove it from its own `after`/`depends_on` list",
                task=self.name,
                field="deps",
            )
        if self.image is not None or self.mounts:
            self._check_container()
        if self.gang is not None and (not isinstance(self.gang, str) or not self.gang.strip()):
            raise SpecError(
                f"task {self.name}: gang must be a non-empty name, got {self.gang!r}",
                hint="tasks that must start together share one gang name, e.g. gang='sim-1'",
                task=self.name,
                field="gang",
            )
        if self.sites:
            from hexflow.model.sites import site_names

            object.__setattr__(self, "sites", site_names(sites=list(self.sites), where=self.name))

    def _check_container(self) -> None:
        if self.image is not None:
            check_image(self.image, self.name)
        mounts = normalize_mounts(self.mounts, self.name)
        object.__setattr__(self, "mounts", mounts)
        check_container_task(self.name, self.image, mounts, self.resources.memory, self.env)

    @property
    def time_limit(self) -> tuple[float, str] | None:
        """The tighter of timeout and walltime, with which one it is."""
        limits = [
            (t, reason)
            for t, reason in ((self.timeout, "timeout"), (self.resources.walltime, "walltime"))
            if t is not None
        ]
        return min(limits) if limits else None


fast_state(RetryPolicy)
fast_state(TaskSpec)


def dedupe(ids: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def normalize_argv(value: object, task_name: str = "task") -> tuple[str, ...]:
    """A command as a tuple of strings, from a list/tuple of str/int/float/path or a string.

    A string is split like a POSIX shell would split it, without running a shell.
    """
    import os
    import shlex

    if isinstance(value, str):
        argv = tuple(shlex.split(value))
    elif isinstance(value, list | tuple) and all(
        isinstance(a, str | int | float | os.PathLike) and not isinstance(a, bool) for a in value
    ):
        argv = tuple(os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in value)
    else:
        raise SpecError(
            f"task {task_name}: the command must be a list of strings or one string, got {value!r}",
            hint="return e.g. ['convert', path, 'out.png'] from a @shell function",
            task=task_name,
            field="command",
        )
    if not argv:
        raise SpecError(f"task {task_name}: the command is empty", task=task_name, field="command")
    return argv


def shell_command(value: object, use_shell: bool, task_name: str = "task") -> tuple[str, ...]:
    """The command a ``@shell`` function returned, as the spec stores it.

    Without ``use_shell``: an argument list (``normalize_argv``). With it: one string for
    ``/bin/sh -c`` (a returned list is joined with POSIX quoting, so no argument is
    re-interpreted by the shell).
    """
    import shlex

    if use_shell and isinstance(value, str) and value.strip():
        return (value,)
    argv = normalize_argv(value, task_name)
    return (shlex.join(argv),) if use_shell else argv
