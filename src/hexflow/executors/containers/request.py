"""What a container run needs, independent of the runtime: ``ContainerRequest`` in,
``ContainerCommand`` out of a builder.

A request holds resolved values only (absolute host paths already checked against the
site's roots, GPU ids already bound): builders turn it into a command line and do no I/O.
This module is imported by worker processes: it stays light (dataclasses only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class BindMount:
    source: str  # absolute host path
    target: str  # absolute path in the container
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    image: str  # a name, an image id (podman) or an image file (apptainer)
    name: str  # unique per attempt; the handle to stop the container by
    workdir: str  # the command's working directory (inside; mounted at the same path)
    state_dir: str  # hexflow's per-attempt files (env file, Python job): host path
    mounts: tuple[BindMount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # what the task sees inside
    cpus: float = 0.0  # 0: no limit
    memory: int = 0  # bytes; 0: no limit
    gpu_ids: tuple[int, ...] = ()  # host GPU ids bound to this task
    network: str = "none"  # none | host
    init: bool = True  # a minimal init as PID 1 forwards signals (SIGTERM on cancel)

    def with_image(self, image: str) -> ContainerRequest:
        return replace(self, image=image)


@dataclass(frozen=True, slots=True)
class ContainerCommand:
    """The runtime's command line up to the image; the task's argv follows it.

    ``env``: variables for the runtime process itself (how some runtimes receive the task's
    environment without it entering the command line); ``files``: files to write in the
    request's ``state_dir`` first (name -> text), such as podman's ``--env-file``.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def wrap(self, command: Sequence[str]) -> list[str]:
        return [*self.argv, *command]
