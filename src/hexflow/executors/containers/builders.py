"""Command lines of the container runtimes: pure functions of a ``ContainerRequest``.

``podman`` (tested for real), ``podman-hpc`` (NERSC's podman), ``apptainer exec`` and
``shifter``. Each builder returns the argv up to the image (the task's command follows) and
how the task's environment reaches the container without entering a shell or, where the
runtime allows it, the command line. The helper commands a runtime needs (resolve an image
to its id and digest, remove a container left by a killed run) are here too, with the
parsers of their output; ``tools.run_tool`` is the one place they are executed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hexflow.executors.containers.request import BindMount, ContainerCommand, ContainerRequest

ENV_FILE = "env"  # name of podman's --env-file in the request's state_dir


class ContainerSetupError(Exception):
    """A request the chosen runtime cannot honour (e.g. no network isolation in shifter)."""


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _mode(mount: BindMount) -> str:
    return "ro" if mount.read_only else "rw"


def _env_file_safe(value: str) -> bool:
    # podman reads --env-file line by line (and drops a trailing \r): anything else goes
    # through the runtime's own environment instead
    return not any(c in value for c in "\n\r\0") and len(value) < 32768


def _is_image_file(image: str) -> bool:
    return image.startswith(("/", "./", "../"))


def podman(request: ContainerRequest, executable: str = "podman") -> ContainerCommand:
    """``podman run`` in the foreground: exit code, stdout/stderr and signals pass through.

    ``--pull=never`` (an unknown image fails at once, no registry wait), ``--init`` (PID 1
    forwards SIGTERM), ``--log-driver=passthrough`` (the container writes straight to the
    task's log files), ``--replace`` (a stale container of the same attempt goes). The
    environment goes in an ``--env-file`` (mode 0600, in the state dir), so values never
    appear on a command line; a value the file cannot hold passes through ``--env NAME``.
    """
    argv = [executable, "run", "--rm", "--replace", "--name", request.name, "--pull=never"]
    argv += [f"--network={request.network}", "--log-driver=passthrough"]
    if request.init:
        argv.append("--init")
    if request.cpus:
        argv += ["--cpus", _number(request.cpus)]
    if request.memory:  # no swap on top: exceeding the limit is an OOM kill, not a slowdown
        argv += ["--memory", str(request.memory), "--memory-swap", str(request.memory)]
    env = dict(request.env)
    if request.gpu_ids:
        if executable == "podman-hpc":
            argv.append("--gpu")
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, request.gpu_ids))
        else:  # CDI names the host devices; inside they are numbered from 0
            for gpu in request.gpu_ids:
                argv += ["--device", f"nvidia.com/gpu={gpu}"]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(len(request.gpu_ids))))
    for mount in request.mounts:
        argv += ["--volume", f"{mount.source}:{mount.target}:{_mode(mount)}"]
    argv += ["--workdir", request.workdir]
    in_file = {k: v for k, v in env.items() if _env_file_safe(v)}
    passed = {k: v for k, v in env.items() if k not in in_file}
    files = {}
    if in_file:
        files[ENV_FILE] = "".join(f"{k}={v}\n" for k, v in in_file.items())
        argv += ["--env-file", os.path.join(request.state_dir, ENV_FILE)]
    for key in passed:
        argv += ["--env", key]
    argv.append(request.image)
    return ContainerCommand(tuple(argv), env=passed, files=files)


def podman_hpc(request: ContainerRequest) -> ContainerCommand:
    """NERSC's ``podman-hpc run``: podman's options; GPUs with ``--gpu``."""
    return podman(request, executable="podman-hpc")


def apptainer(request: ContainerRequest) -> ContainerCommand:
    """``apptainer exec``: a clean environment (``--cleanenv``) given through
    ``APPTAINERENV_*`` variables of the runtime process, binds, GPUs with ``--nv``.

    An OCI reference runs as ``docker://REF`` (from apptainer's cache); sites usually name
    a ``.sif`` file. Limits use apptainer's cgroup options; under Slurm the allocation
    enforces them as well.
    """
    argv = ["apptainer", "exec", "--cleanenv", "--contain"]
    if request.network == "none":
        argv += ["--net", "--network", "none"]
    if request.cpus:
        argv += ["--cpus", _number(request.cpus)]
    if request.memory:
        argv += ["--memory", str(request.memory), "--memory-swap", str(request.memory)]
    env = dict(request.env)
    if request.gpu_ids:
        argv.append("--nv")  # all of the node's GPUs appear; CUDA sees the bound ones
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, request.gpu_ids))
    for mount in request.mounts:
        argv += ["--bind", f"{mount.source}:{mount.target}:{_mode(mount)}"]
    argv += ["--pwd", request.workdir]
    image = request.image if _is_image_file(request.image) else f"docker://{request.image}"
    argv.append(image)
    return ContainerCommand(tuple(argv), env={f"APPTAINERENV_{k}": v for k, v in env.items()})


def shifter(request: ContainerRequest) -> ContainerCommand:
    """``shifter --image=docker:REF``: the host network and the caller's environment (shifter
    keeps both); volumes, the working directory, GPUs with ``--module=gpu``. Limits are the
    batch allocation's (Slurm)."""
    if request.network == "none":
        raise ContainerSetupError(
            "shifter cannot run a container without network: set "
            "HEXFLOW_CONTAINER_NETWORK=host for this site"
        )
    if _is_image_file(request.image):
        raise ContainerSetupError(
            f"shifter runs images from its image gateway, not files: {request.image!r}"
        )
    image = (
        request.image
        if request.image.startswith(("docker:", "id:"))
        else (f"docker:{request.image}")
    )
    argv = ["shifter", f"--image={image}"]
    env = dict(request.env)
    if request.gpu_ids:
        argv.append("--module=gpu")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, request.gpu_ids))
    for mount in request.mounts:
        flags = ":ro" if mount.read_only else ""
        argv.append(f"--volume={mount.source}:{mount.target}{flags}")
    argv += [f"--workdir={request.workdir}", "--"]
    return ContainerCommand(tuple(argv), env=env)


# ---------------------------------------------------------------- helper commands
@dataclass(frozen=True, slots=True)
class Runtime:
    """One runtime: its builder and its helper commands (None where it needs none)."""

    name: str
    build: Callable[[ContainerRequest], ContainerCommand]
    inspect: Callable[[str], list[str]] | None  # argv printing "ID DIGEST" of an image
    remove: Callable[[str], list[str]] | None  # argv stopping and removing a container
    network_default: str  # what HEXFLOW_CONTAINER_NETWORK defaults to


def _podman_inspect(executable: str) -> Callable[[str], list[str]]:
    return lambda image: [executable, "image", "inspect", "--format", "{{.Id}} {{.Digest}}", image]


def _podman_remove(executable: str) -> Callable[[str], list[str]]:
    return lambda name: [executable, "rm", "--force", "--ignore", "--time", "0", name]


def _shifter_inspect(image: str) -> list[str]:
    ref = image if image.startswith(("docker:", "id:")) else f"docker:{image}"
    return ["shifterimg", "lookup", ref]


RUNTIMES: Mapping[str, Runtime] = {
    "podman": Runtime(
        "podman", podman, _podman_inspect("podman"), _podman_remove("podman"), "none"
    ),
    "podman-hpc": Runtime(
        "podman-hpc",
        podman_hpc,
        _podman_inspect("podman-hpc"),
        _podman_remove("podman-hpc"),
        "none",
    ),
    # apptainer and shifter run the container as a child of their own process: a signal to
    # the process group reaches it, and nothing outlives a kill
    "apptainer": Runtime("apptainer", apptainer, None, None, "host"),
    "shifter": Runtime("shifter", shifter, _shifter_inspect, None, "host"),
}


def parse_inspect(output: str) -> tuple[str, str | None]:
    """(image id, digest or None) from the inspect command's output."""
    words = output.split()
    if not words:
        raise ContainerSetupError("the image inspection printed nothing")
    image_id = words[0]
    digest = words[1] if len(words) > 1 and words[1] not in ("", "<none>") else None
    return image_id, digest
