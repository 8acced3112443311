"""What a task asks of a container: the image it runs in and the host paths bind-mounted.

Checked when the task is defined: an image is an OCI reference (``localhost/python:test``,
``registry.example.org:5000/ns/app@sha256:...``) or an image file (``/images/app.sif``,
``./app.sif``); a mount is ``host:container[:ro|rw]`` and is kept as that one normalized
string (``src:/dst:rw``), so a spec holds only plain values. Whether a host path may be
mounted (the site's allowed roots) is decided at launch, where the roots are known.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hexflow.errors import SpecError

# The OCI distribution reference grammar: [host[:port]/]path[:tag][@algorithm:hex].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"  # noqa: E501
_REFERENCE = re.compile(
    rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{{32,}})?$"  # noqa: E501
)
_IMAGE_FILE = re.compile(r"^\.{0,2}/[^\0\s]+$")  # an image file: an absolute or ./ path
_RESERVED = ("/proc", "/sys", "/dev")  # the runtime owns these inside the container
CONTAINER_RUNTIMES = ("podman", "apptainer", "podman-hpc", "shifter")  # what a site may run
MIN_CONTAINER_MEMORY = 6 * 1024**2  # podman refuses less: "minimum memory limit allowed is 6MB"


def _who(task: str | None) -> str:
    return f"task {task}: " if task else ""


def check_image(value: object, task: str | None = None) -> str:
    """The image name, or SpecError naming the forms accepted."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(
            f"{_who(task)}image must be a non-empty string, got {value!r}",
            hint="name an image such as 'localhost/python:test' or an image file '/images/app.sif'",
            task=task,
            field="image",
        )
    if len(value) > 512 or not (_REFERENCE.match(value) or _IMAGE_FILE.match(value)):
        hint = "write [registry/]name[:tag][@sha256:...] in lower case, e.g. localhost/python:test"
        if value != value.strip():
            hint = "remove the spaces around the name"
        elif value.startswith("-"):
            hint = "an image name cannot start with '-'"
        raise SpecError(
            f"{_who(task)}image {value!r} is not an image reference or an image file",
            hint=hint + "; an image file is an absolute or ./ path",
            task=task,
            field="image",
        )
    return value


@dataclass(frozen=True, slots=True)
class Mount:
    """One bind mount. ``source`` may be relative: to the run's directory, at launch."""

    source: str
    target: str
    read_only: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


def parse_mount(value: object, task: str | None = None) -> Mount:
    """``host:container[:ro|rw]`` (rw when not given) as a ``Mount``, or SpecError."""

    def bad(why: str, hint: str = "write host:container[:ro|rw], e.g. data:/data:ro") -> SpecError:
        return SpecError(
            f"{_who(task)}mount {value!r}: {why}", hint=hint, task=task, field="mounts"
        )

    if not isinstance(value, str):
        raise bad(f"expected a string, got {type(value).__name__}")
    if "\0" in value or "\n" in value:
        raise bad("holds a NUL byte or a newline")
    parts = value.split(":")
    if len(parts) == 3:
        source, target, mode = parts
    elif len(parts) == 2:
        (source, target), mode = parts, "rw"
    else:
        raise bad("expected two or three parts separated by ':'")
    if mode not in ("ro", "rw"):
        raise bad(f"the mode must be 'ro' or 'rw', got {mode!r}")
    if not source:
        raise bad("the host path is empty")
    if not target.startswith("/"):
        raise bad("the path in the container must be absolute", "e.g. data:/data")
    target = posixpath.normpath(target)
    if target == "/" or any(target == r or target.startswith(r + "/") for r in _RESERVED):
        raise bad(
            f"cannot mount over {target} in the container",
            "choose another path, such as /data or /work",
        )
    if "," in source or "," in target:
        raise bad("paths holding ',' cannot be passed to container runtimes")
    return Mount(source, target, mode == "ro")


def normalize_mounts(values: Iterable[object] | None, task: str | None = None) -> tuple[str, ...]:
    """Mounts as normalized strings ``src:/dst:ro|rw``; a container path may appear once."""
    if values is None:
        return ()
    if isinstance(values, str | bytes):
        raise SpecError(
            f"{_who(task)}mounts must be a list of 'host:container[:ro|rw]' strings",
            hint="write mounts=['data:/data:ro'], not mounts='data:/data:ro'",
            task=task,
            field="mounts",
        )
    out: dict[str, str] = {}
    for value in values:
        mount = parse_mount(value, task)
        if mount.target in out:
            raise SpecError(
                f"{_who(task)}two mounts at {mount.target} in the container",
                hint="each container path may be mounted once",
                task=task,
                field="mounts",
            )
        out[mount.target] = str(mount)
    return tuple(out.values())


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_container_task(
    task: str | None,
    image: str | None,
    mounts: tuple[str, ...],
    memory: int,
    env_names: Iterable[str],
) -> None:
    """What a task with an image needs beyond a bare task (or ``mounts`` without an image)."""
    if image is None:
        if mounts:
            raise SpecError(
                f"{_who(task)}mounts are given but no image",
                hint="mounts apply to container tasks: give image= as well",
                task=task,
                field="mounts",
            )
        return
    if 0 < memory < MIN_CONTAINER_MEMORY:
        raise SpecError(
            f"{_who(task)}a container task needs at least 6M of memory, got {memory} bytes",
            hint="ask for memory='64M' or more, or leave memory unset for no limit",
            task=task,
            field="memory",
        )
    for name in env_names:
        if not _ENV_NAME.match(name):
            raise SpecError(
                f"{_who(task)}env name {name!r} cannot be passed into a container",
                hint="use letters, digits and '_', not starting with a digit",
                task=task,
                field="env",
            )
