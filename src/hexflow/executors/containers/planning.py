"""From a task to a ``ContainerRequest``: which host paths are mounted, and which may be.

The site's configuration (``ContainerConfig``: runtime, network, allowed mount roots) is
given once; ``plan`` is called per attempt. A user mount is resolved against the task's
working directory, with symlinks followed, and must exist and lie under an allowed root
(``HEXFLOW_MOUNT_ROOTS``; by default the run's directory and the hexflow home): anything
else raises ``ContainerError`` before a runtime is started. hexflow's own mounts (the
run's directory, the checkpoint directory, the attempt's state directory and, for Python
tasks, the interpreter support) are added here and are not subject to the roots.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hexflow.errors import ContainerError
from hexflow.executors.containers.builders import RUNTIMES
from hexflow.executors.containers.request import BindMount, ContainerRequest
from hexflow.model.container import parse_mount

_MIN_CPUS = 0.01  # the smallest --cpus podman takes


@dataclass(frozen=True)
class ContainerConfig:
    runtime: str = "podman"
    network: str | None = None  # None: the runtime's default (podman: none)
    mount_roots: tuple[str, ...] = ()  # empty: the run's directory only
    host_cpus: int = 0  # 0: this machine's count

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ContainerError(
                f"unknown container runtime {self.runtime!r}",
                hint=f"HEXFLOW_CONTAINER_RUNTIME is one of: {', '.join(RUNTIMES)}",
                field="runtime",
            )


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _check_path(path: str, task: str, what: str) -> None:
    if ":" in path or "," in path:
        raise ContainerError(
            f"task {task}: {what} {path!r} holds ':' or ',', which container runtimes "
            "cannot bind-mount",
            hint="rename the directory or mount a parent of it",
            task=task,
        )


def plan(
    config: ContainerConfig,
    *,
    task: str,
    image: str,
    name: str,
    workdir: str,
    cwd: str,
    state_dir: str,
    mounts: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cpus: float = 0.0,
    memory: int = 0,
    gpu_ids: Sequence[int] = (),
    extra_mounts: Sequence[BindMount] = (),
) -> ContainerRequest:
    """The request for one attempt; ``ContainerError`` when a mount is not allowed."""
    runtime = RUNTIMES[config.runtime]
    workdir = os.path.realpath(workdir)
    cwd = os.path.realpath(cwd)
    roots = [os.path.realpath(r) for r in (config.mount_roots or (workdir,))]
    chosen: dict[str, BindMount] = {}  # by target: a later mount replaces an earlier one

    def add(mount: BindMount) -> None:
        _check_path(mount.source, task, "the host path")
        _check_path(mount.target, task, "the container path")
        chosen[mount.target] = mount

    add(BindMount(workdir, workdir))
    if not _under(cwd, [workdir]):  # a cwd of its own elsewhere: a path the user chose
        if not _under(cwd, roots):
            raise _outside(task, "its working directory", cwd, roots)
        add(BindMount(cwd, cwd))
    checkpoint = (env or {}).get("HEXFLOW_CHECKPOINT_DIR")
    if checkpoint and not _under(os.path.realpath(checkpoint), [workdir]):
        add(BindMount(checkpoint, checkpoint))
    for mount in extra_mounts:
        add(mount)
    for text in mounts:
        wanted = parse_mount(text, task)
        source = os.path.realpath(os.path.join(cwd, os.path.expanduser(wanted.source)))
        if not os.path.exists(source):
            raise ContainerError(
                f"task {task}: mount {text!r}: {source} does not exist",
                hint="create it first, or fix the host path (relative paths start at the "
                "task's working directory)",
                task=task,
                field="mounts",
            )
        if not _under(source, roots):
            raise _outside(task, f"mount {text!r}:", source, roots)
        add(BindMount(source, wanted.target, wanted.read_only))
    network = config.network or runtime.network_default
    host_cpus = config.host_cpus or os.cpu_count() or 1
    return ContainerRequest(
        image=image,
        name=name,
        workdir=cwd,
        state_dir=state_dir,
        mounts=tuple(chosen.values()),
        env=dict(env or {}),
        cpus=min(max(cpus, _MIN_CPUS), float(host_cpus)) if cpus else 0.0,
        memory=memory,
        gpu_ids=tuple(gpu_ids),
        network=network,
    )


def _outside(task: str, what: str, path: str, roots: Sequence[str]) -> ContainerError:
    return ContainerError(
        f"task {task}: {what} {path} is outside the directories container tasks may mount "
        f"({', '.join(roots)})",
        hint="mount something under those directories, or let the site allow more with "
        "HEXFLOW_MOUNT_ROOTS=dir1:dir2",
        task=task,
        field="mounts",
    )
