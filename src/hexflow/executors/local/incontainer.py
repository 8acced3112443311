"""Local-executor jobs that run inside a container image (worker side, and inside the image).

A job with a ``ContainerJob`` attached runs as one runtime command started by the worker's
command runner, so exit codes, logs, time limits and cancel work as for a shell task:

- the image is resolved first (``podman image inspect``): an unknown image fails at once,
  naming it, and the id and digest that ran are answered for provenance;
- a shell task's argv (or ``/bin/sh -c`` script) becomes the container's command; a
  ``@shell`` builder function runs here first, on the host, as it does bare;
- a Python task is the same job run by ``python3`` in the image: the job is written to the
  attempt's state directory (mounted), hexflow and cloudpickle are mounted read-only under
  ``/opt/hexflow/lib``, the engine's site-packages are mounted read-only and put after the
  image's own, and the answer comes back as a file;
- a runtime killed by SIGKILL leaves its container running (podman's conmon outlives it):
  the container is removed before the answer, and if the engine dies meanwhile the worker
  replaces itself with that removal (``cleanup`` below).
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hexflow.executors.containers.builders import RUNTIMES, ContainerSetupError, parse_inspect
from hexflow.executors.containers.request import BindMount, ContainerRequest
from hexflow.executors.containers.tools import run_tool

LIB = "/opt/hexflow/lib"  # where hexflow and cloudpickle appear in the image
JOB_FILE, ANSWER_FILE = "job.pkl", "answer.pkl"
OOM_MARK = "oom"  # conmon writes an empty file of this name in its cwd on an OOM kill
PYTHON, SHELL, SHELL_BUILDER = "python", "shell", "shell_builder"
# Run by the image's python3: hexflow first on the path, the engine's packages last.
INNER_BOOT = (
    "import os, sys; "
    "sys.path[:0] = os.environ.pop('HEXFLOW_CONTAINER_PATH').split(':'); "
    "sys.path += [p for p in os.environ.pop('HEXFLOW_CONTAINER_SITE', '').split(':') if p]; "
    "from hexflow.executors.local.incontainer import inner_main; "
    "inner_main(sys.argv[1], sys.argv[2])"
)

Answer = tuple[Any, ...]
# A worker resolves an image name at most once in RESOLVE_TTL seconds (an inspection costs
# about as much as a fifth of the container's start); what is recorded is still exactly
# what ran: podman runs the resolved image id. (runtime, name) -> (when, run as, id, digest)
RESOLVE_TTL = 30.0
_RESOLVED: dict[tuple[str, str], tuple[float, str, str, str]] = {}


@dataclass(frozen=True, slots=True)
class ContainerJob:
    runtime: str
    request: ContainerRequest
    python: str = "python3"


def python_support() -> tuple[tuple[BindMount, ...], dict[str, str]]:
    """Mounts and environment that let an image's python3 run a hexflow job (engine side)."""
    import cloudpickle

    package = os.path.abspath(__file__)
    for _ in range(3):  # hexflow/executors/local/incontainer.py -> hexflow/
        package = os.path.dirname(package)
    mounts = [
        BindMount(package, f"{LIB}/hexflow", True),
        BindMount(
            os.path.dirname(os.path.abspath(cloudpickle.__file__)), f"{LIB}/cloudpickle", True
        ),
    ]
    sites = list(
        dict.fromkeys(
            os.path.realpath(p)
            for p in sys.path
            if p.rstrip("/").endswith("site-packages") and os.path.isdir(p)
        )
    )
    mounts += [BindMount(p, p, True) for p in sites if ":" not in p and "," not in p]
    env = {"HEXFLOW_CONTAINER_PATH": LIB, "HEXFLOW_CONTAINER_SITE": ":".join(sites)}
    return tuple(mounts), env


def run_container_job(
    job: tuple[Any, ...],
    output: Any,
    answers: Any,
    *,
    run_job: Callable[..., Answer],
    run_command: Callable[..., Answer],
    slot: dict[str, Any],
) -> Answer:
    """Run ``job`` (its 11th item a ``ContainerJob``); the answer has a 11th item: what ran
    (``image``, ``image_id``, ``image_digest``, ``runtime``) and ``oom``."""
    token, kind, _payload, _inputs, _env, _cwd, out_path, err_path, command, use_shell, cjob = job
    start = time.time()
    runtime = RUNTIMES[cjob.runtime]
    request: ContainerRequest = cjob.request
    extra: dict[str, Any] = {"image": request.image, "runtime": runtime.name}
    state = request.state_dir
    os.makedirs(state, mode=0o700, exist_ok=True)
    try:
        image, failure = _resolve(runtime.name, request.image, state, extra)
        if failure is not None:
            return _launch_failed(token, failure, start, 125, extra)
        if kind == PYTHON:
            with open(os.path.join(state, JOB_FILE), "wb") as f:
                pickle.dump(job[:10], f, protocol=pickle.HIGHEST_PROTOCOL)
            argv = [cjob.python, "-c", INNER_BOOT]
            argv += [os.path.join(state, JOB_FILE), os.path.join(state, ANSWER_FILE)]
        else:
            if kind == SHELL_BUILDER:
                built = _build_command(job, output, run_job)
                if built[0] is None:
                    return (*built[1], extra)
                command = built[0]
            argv = ["/bin/sh", "-c", command[0]] if use_shell else list(command)
        try:
            line = runtime.build(request.with_image(image))
        except ContainerSetupError as exc:
            return _launch_failed(token, str(exc), start, 126, extra)
        for name, text in line.files.items():
            fd = os.open(os.path.join(state, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        remove = runtime.remove(request.name) if runtime.remove else None
        slot["cleanup"] = remove
        try:
            # cwd: the state dir, where conmon leaves its OOM mark (never the user's dir)
            ran = run_command(
                token, tuple(line.wrap(argv)), False, line.env, state, out_path, err_path, answers
            )
        finally:
            slot["cleanup"] = None
        code = ran[7]
        if code == 125:  # the runtime's own error (e.g. the image went): resolve it again
            _RESOLVED.pop((runtime.name, request.image), None)
        if remove is not None and code is not None and code < 0:
            run_tool(remove, cwd=state)  # the runtime was killed: its container was not
        extra["oom"] = os.path.exists(os.path.join(state, OOM_MARK))
        if kind != PYTHON or ran[3] is not None:  # a command's end, or a failed launch
            return (*ran[:10], extra)
        return (*_python_answer(token, state, code, start, request.image), extra)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _launch_failed(
    token: int, message: str, start: float, code: int, extra: dict[str, Any]
) -> Answer:
    return (token, False, None, "launch_failed", message, None, start, code, None, None, extra)


def _resolve(runtime: str, image: str, state: str, extra: dict[str, Any]) -> tuple[str, str | None]:
    """(image to run, None) or (_, why it cannot run); fills the provenance in ``extra``."""
    spec = RUNTIMES[runtime]
    if spec.inspect is None:
        if image.startswith(("/", "./", "../")) and not os.path.exists(image):
            return image, f"image file {image!r} does not exist"
        return image, None
    hit = _RESOLVED.get((runtime, image))
    if hit is not None and time.monotonic() - hit[0] < RESOLVE_TTL:
        extra["image_id"], extra["image_digest"] = hit[2], hit[3]
        return hit[1], None
    found = run_tool(spec.inspect(image), cwd=state)
    if found.returncode == 127:
        return image, (
            f"the container runtime {runtime!r} is not installed here ({found.message}); "
            "install it or choose another with HEXFLOW_CONTAINER_RUNTIME"
        )
    if found.returncode != 0:
        return image, (
            f"image {image!r} is not available to {runtime} ({found.message}); hexflow never "
            f"pulls images: build, load or pull it first (e.g. `{runtime} pull {image}`)"
        )
    image_id, digest = parse_inspect(found.stdout)
    extra["image_id"] = image_id
    extra["image_digest"] = digest or image_id
    # podman runs the very image that was inspected, even if the name moves meanwhile
    run_as = image_id if runtime in ("podman", "podman-hpc") else image
    _RESOLVED[(runtime, image)] = (time.monotonic(), run_as, image_id, extra["image_digest"])
    return run_as, None


def _build_command(
    job: tuple[Any, ...], output: Any, run_job: Callable[..., Answer]
) -> tuple[tuple[str, ...] | None, Answer]:
    """Run a ``@shell`` builder function here, as bare; (argv, _) or (None, its failure)."""
    import cloudpickle

    from hexflow.errors import SpecError
    from hexflow.model.spec import shell_command

    token, use_shell = job[0], job[9]
    answer = run_job((job[0], PYTHON, *job[2:10]), output, None)
    if not answer[1]:
        return None, answer
    try:
        return shell_command(cloudpickle.loads(answer[2]), use_shell, str(token)), answer
    except SpecError as exc:
        failed = (token, False, None, "SpecError", f"SpecError: {exc}", None, answer[6])
        return None, (*failed, None, None, None)


def _python_answer(token: int, state: str, code: int | None, start: float, image: str) -> Answer:
    """The answer the job wrote in the container, or why there is none."""
    try:
        with open(os.path.join(state, ANSWER_FILE), "rb") as f:
            answer: Answer = pickle.load(f)
        return answer
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    if code in (126, 127):
        why = f"the image {image!r} cannot run python3 (exit code {code}): it needs one"
    else:
        why = f"the container ended without an answer (exit code {code})"
    return (token, False, None, "container_exit", why, None, start, code, None, None)


def cleanup_now(slot: dict[str, Any]) -> None:
    """The engine died while a container ran: become the command that removes it."""
    remove = slot.get("cleanup")
    if remove:
        try:
            os.execvp(remove[0], remove)
        except OSError:
            pass


# ---------------------------------------------------------------- inside the image
def inner_main(job_path: str, answer_path: str) -> None:
    """Run the job in ``job_path`` (by the image's python3) and write the answer."""
    from hexflow.executors.local import worker

    signal.signal(signal.SIGUSR1, worker._on_preempt_notice)  # preemption notice, as bare
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    answer = worker.run_job(job, None, None)
    if not answer[1] and answer[5]:
        sys.stderr.write(answer[5])  # the traceback goes to the task's stderr, as bare
    sys.stdout.flush()
    sys.stderr.flush()
    part = answer_path + ".part"
    with open(part, "wb") as f:
        pickle.dump(answer, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(part, answer_path)
