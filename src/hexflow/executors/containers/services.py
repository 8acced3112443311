"""Long-lived service containers (a database, a Jupyter server, a broker on the service
node): their validated description and the podman command lines that start, inspect,
probe, restart and remove them. Pure: ``tools.run_tool`` runs what is built here.

Invariants: a service's container is named ``hexflow-svc-PROJECT-NAME`` (so one project
never reaches another's), publishes its port on 127.0.0.1 only, never pulls an image
(``--pull=never``) and is restarted by podman when its process exits non-zero
(``--restart=on-failure``); environment values never appear on a command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hexflow.errors import SpecError
from hexflow.executors.containers.request import BindMount

PREFIX = "hexflow-svc-"
LABEL = "hexflow.service"  # label value: "PROJECT/NAME"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$|^[a-z]$")
_PROJECT_UNSAFE = re.compile(r"[^a-z0-9-]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE = re.compile(r"^[a-z0-9][A-Za-z0-9._/:@-]*$")
_UNSAFE_TARGETS = ("/", "/proc", "/sys", "/dev")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What ``services start`` asked for, checked (``ServiceSpec.parse``)."""

    project: str
    name: str
    image: str
    host_port: int
    container_port: int
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[BindMount, ...] = ()
    command: tuple[str, ...] = ()
    health_cmd: tuple[str, ...] = ()  # run inside the container: exit 0 is healthy
    health_tcp: bool = False  # healthy when 127.0.0.1:host_port accepts a connection

    @property
    def container(self) -> str:
        return container_name(self.project, self.name)

    def as_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "host_port": self.host_port,
            "container_port": self.container_port,
            "env": dict(self.env),
            "mounts": [[m.source, m.target, m.read_only] for m in self.mounts],
            "command": list(self.command),
            "health_cmd": list(self.health_cmd),
            "health_tcp": self.health_tcp,
        }

    @classmethod
    def from_json(cls, project: str, name: str, data: Mapping[str, Any]) -> ServiceSpec:
        mounts = data.get("mounts") or []
        return cls(
            project=project,
            name=name,
            image=str(data["image"]),
            host_port=int(data["host_port"]),
            container_port=int(data["container_port"]),
            env=dict(data.get("env") or {}),
            mounts=tuple(BindMount(str(s), str(t), bool(r)) for s, t, r in mounts),
            command=tuple(data.get("command") or ()),
            health_cmd=tuple(data.get("health_cmd") or ()),
            health_tcp=bool(data.get("health_tcp")),
        )


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SpecError(
            f"bad service name {name!r}",
            hint="use 1 to 40 lower-case letters, digits and '-', starting with a letter "
            "and not ending with '-' (e.g. 'logdb')",
            field="name",
        )
    return name


def container_name(project: str, name: str) -> str:
    return f"{PREFIX}{_PROJECT_UNSAFE.sub('-', project.lower())}-{name}"


def parse_port(text: str | int) -> tuple[int, int]:
    """``HOST[:CONTAINER]`` -> (host, container); the container port defaults to the host's."""
    parts = str(text).split(":")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        host, inside = int(parts[0]), int(parts[-1])
    except ValueError:
        raise SpecError(
            f"bad port {text!r}", hint="give HOST_PORT or HOST_PORT:CONTAINER_PORT", field="port"
        ) from None
    for port in (host, inside):
        if not 1 <= port <= 65535:
            raise SpecError(f"port {port} is out of range 1-65535", field="port")
    if host < 1024:
        raise SpecError(
            f"host port {host} is privileged", hint="use a port of 1024 or more", field="port"
        )
    return host, inside


def parse_mount(text: str) -> BindMount:
    """``/host:/container[:ro|rw]``; the host path must be absolute (checked by the caller
    against the allowed roots)."""
    parts = text.split(":")
    mode = "rw"
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) != 2 or mode not in ("ro", "rw"):
        raise SpecError(f"bad mount {text!r}", hint="give /host:/container[:ro|rw]", field="mount")
    source, target = parts
    if not source.startswith("/") or not target.startswith("/") or target in _UNSAFE_TARGETS:
        raise SpecError(
            f"bad mount {text!r}: both paths must be absolute, the target not / /proc /sys /dev",
            field="mount",
        )
    return BindMount(source, target, mode == "ro")


def make_spec(
    project: str,
    name: str,
    *,
    image: str,
    port: str | int,
    env: Mapping[str, str] | None = None,
    mounts: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
    health_cmd: tuple[str, ...] = (),
    health_tcp: bool = False,
) -> ServiceSpec:
    """Check every field; raises ``SpecError`` naming the field."""
    check_name(name)
    if not _IMAGE.match(image) or len(image) > 255:
        raise SpecError(f"bad image reference {image!r}", field="image")
    host, inside = parse_port(port)
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key):
            raise SpecError(f"bad environment name {key!r}", field="env")
        if "\0" in value or "\n" in value:
            raise SpecError(f"environment value of {key} holds a newline or NUL", field="env")
    if health_cmd and health_tcp:
        raise SpecError("give --health-cmd or --health-tcp, not both", field="health")
    return ServiceSpec(
        project=project,
        name=name,
        image=image,
        host_port=host,
        container_port=inside,
        env=dict(env or {}),
        mounts=tuple(parse_mount(m) for m in mounts),
        command=tuple(command),
        health_cmd=tuple(health_cmd),
        health_tcp=health_tcp,
    )


# ---------------------------------------------------------------- command lines
def run_argv(spec: ServiceSpec, executable: str = "podman") -> list[str]:
    """Start the service detached. The environment goes as ``--env NAME``: podman reads
    each value from its own environment, which the caller sets (``spec.env``)."""
    argv = [executable, "run", "--detach", "--name", spec.container, "--pull=never"]
    argv += ["--restart=on-failure", "--init", f"--label={LABEL}={spec.project}/{spec.name}"]
    argv += ["--publish", f"127.0.0.1:{spec.host_port}:{spec.container_port}"]
    for mount in spec.mounts:
        argv += ["--volume", f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"]
    for key in sorted(spec.env):
        argv += ["--env", key]
    argv.append(spec.image)
    argv += list(spec.command)
    return argv


def inspect_argv(container: str, executable: str = "podman") -> list[str]:
    fmt = "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"
    return [executable, "container", "inspect", "--format", fmt, container]


def parse_state(output: str) -> tuple[str, int, int]:
    """(podman status, restart count, last exit code) from ``inspect_argv``'s output."""
    words = output.split()
    if len(words) < 3:
        return "unknown", 0, 0
    return words[0], int(words[1]), int(words[2])


def health_argv(spec: ServiceSpec, executable: str = "podman") -> list[str]:
    return [executable, "exec", spec.container, *spec.health_cmd]


def restart_argv(container: str, executable: str = "podman") -> list[str]:
    return [executable, "restart", "--time", "5", container]


def remove_argv(container: str, executable: str = "podman") -> list[str]:
    return [executable, "rm", "--force", "--ignore", "--time", "5", container]


def logs_argv(container: str, tail: int, executable: str = "podman") -> list[str]:
    return [executable, "logs", "--tail", str(tail), container]


def image_exists_argv(image: str, executable: str = "podman") -> list[str]:
    return [executable, "image", "exists", image]
