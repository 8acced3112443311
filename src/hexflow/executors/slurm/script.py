"""The sbatch script builder: a ``JobRequest`` in, the text of a batch script out. Pure.

Every value that reaches a ``#SBATCH`` line is checked against a strict character set
(sbatch splits directive lines itself, so quoting cannot be relied on there): a value with
a space, quote, newline or shell metacharacter is refused with ``ExecutorError``, never
passed through. Everything in the script body is quoted with ``shlex.quote``; environment
names must be identifiers. ``request_for`` maps hexflow ``Resources`` to a request:
requests are per node, as in the scheduler (``cpus=4, nodes=2``: 4 cpus on each of 2 nodes).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hexflow.errors import ExecutorError
from hexflow.executors.containers.request import ContainerCommand
from hexflow.model import Resources

# What a directive value may hold: paths, names, lists, Slurm's % patterns, GRES specs.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:=,+@%\[\]-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# sbatch options a task may set through its tags (``slurm.<option>``); nothing else.
TAG_OPTIONS = ("partition", "qos", "account", "constraint", "reservation")


@dataclass(frozen=True)
class JobRequest:
    """One sbatch submission: a job, or a job array of ``array_size`` elements."""

    name: str
    nodes: int = 1
    ntasks: int | None = 1
    ntasks_per_node: int | None = None
    cpus_per_task: int = 1
    gpus: int = 0  # in all (nodes == 1) ...
    gpus_per_node: int = 0  # ... or per node (several nodes)
    memory_mb: int = 0  # per node; 0: the partition's default (DefMemPerCPU)
    time_minutes: int | None = None
    partition: str | None = None
    qos: str | None = None
    account: str | None = None
    constraint: str | None = None
    reservation: str | None = None
    output: str | None = None  # Slurm's own messages (and the batch shell's output)
    error: str | None = None
    chdir: str | None = None
    array_size: int | None = None  # None: a single job; N: elements 0..N-1
    requeue: bool = False  # let Slurm requeue the job itself (preemption, node failure)
    env: Mapping[str, str] = field(default_factory=dict)  # exported by the script

    def shape(self) -> tuple[object, ...]:
        """What jobs must share to be submitted together as one array."""
        return (
            self.nodes,
            self.ntasks,
            self.ntasks_per_node,
            self.cpus_per_task,
            self.gpus,
            self.gpus_per_node,
            self.memory_mb,
            self.time_minutes,
            self.partition,
            self.qos,
            self.account,
            self.constraint,
            self.reservation,
            self.requeue,
            tuple(sorted(self.env.items())),
        )


def format_minutes(minutes: int) -> str:
    """Slurm's ``--time`` form ``D-HH:MM:SS`` (or ``HH:MM:SS`` under a day)."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    clock = f"{hours:02d}:{mins:02d}:00"
    return f"{days}-{clock}" if days else clock


def directives(req: JobRequest) -> list[str]:
    """The ``--option=value`` list of a request, each value checked."""
    opts: list[tuple[str, object | None]] = [
        ("job-name", job_name(req.name)),
        ("nodes", req.nodes),
        ("ntasks", req.ntasks),
        ("ntasks-per-node", req.ntasks_per_node),
        ("cpus-per-task", req.cpus_per_task),
        ("gpus", req.gpus or None),
        ("gpus-per-node", req.gpus_per_node or None),
        ("mem", f"{req.memory_mb}M" if req.memory_mb else None),
        ("time", format_minutes(req.time_minutes) if req.time_minutes is not None else None),
        ("partition", req.partition),
        ("qos", req.qos),
        ("account", req.account),
        ("constraint", req.constraint),
        ("reservation", req.reservation),
        ("output", req.output),
        ("error", req.error),
        ("chdir", req.chdir),
        ("array", f"0-{req.array_size - 1}" if req.array_size else None),
    ]
    lines = [f"--{name}={_checked(name, value)}" for name, value in opts if value is not None]
    if req.output or req.error:
        lines.append("--open-mode=append")
    lines.append("--requeue" if req.requeue else "--no-requeue")
    return lines


def render(
    req: JobRequest,
    command: Sequence[str],
    jobs: Sequence[str] | None = None,
    *,
    container: ContainerCommand | None = None,
    state_dir: str | None = None,
) -> str:
    """The batch script: directives, exported ``env``, then ``exec command``.

    With ``jobs`` (an array), element ``$SLURM_ARRAY_TASK_ID`` appends ``jobs[i]`` to the
    command; without, the command runs as it is. Every word is quoted. With ``container``
    (the site's runtime line from ``containers.builders``), the command runs inside it:
    the runtime's own variables are exported, its files (podman's ``--env-file``) are
    written to ``state_dir`` with mode 0600 first, and its argv precedes the command.
    """
    if req.array_size is not None and (jobs is None or len(jobs) != req.array_size):
        raise ExecutorError("a job array needs one job argument per element", request=req.name)
    if not command:
        raise ExecutorError("a batch script needs a command", request=req.name)
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives(req))]
    lines += _exports(req.env)
    if container is not None:
        lines += _container_lines(container, state_dir, req.name)
        command = container.wrap(command)
    for word in command:
        _no_nul(word, "command")
    words = " ".join(shlex.quote(w) for w in command)
    if jobs is None:
        lines.append(f"exec {words}")
    else:
        for job in jobs:
            _no_nul(job, "job argument")
        lines.append("JOBS=(" + " ".join(shlex.quote(j) for j in jobs) + ")")
        lines.append(f'exec {words} "${{JOBS[$SLURM_ARRAY_TASK_ID]}}"')
    return "\n".join(lines) + "\n"


def _exports(env: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in sorted(env.items()):
        if not _ENV_NAME.match(name):
            raise ExecutorError(
                f"cannot export {name!r} in a batch script: not a shell variable name",
                hint="environment names are letters, digits and '_', not starting with a digit",
                name=name,
            )
        _no_nul(value, name)
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def _container_lines(container: ContainerCommand, state_dir: str | None, job: str) -> list[str]:
    """Exports of the runtime's variables and the writing of its files (mode 0600)."""
    lines = _exports(container.env)
    if container.files and state_dir is None:
        raise ExecutorError("a container line with files needs a state directory", request=job)
    for name, text in sorted(container.files.items()):
        if "/" in name or name in ("", ".", ".."):
            raise ExecutorError(f"refusing container file name {name!r}", request=job)
        _no_nul(text, "container file")
        path = shlex.quote(f"{state_dir}/{name}")
        lines.append(f"(umask 077 && printf '%s' {shlex.quote(text)} > {path})")
    return lines


def request_for(
    resources: Resources,
    *,
    name: str,
    time_limit: float | None = None,
    partition: str | None = None,
    qos: str | None = None,
    account: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> JobRequest:
    """Map a task's resources (per node) and time limit (seconds) to a request.

    ``tags`` may override ``slurm.partition``, ``slurm.qos``, ``slurm.account``,
    ``slurm.constraint`` and ``slurm.reservation``; other ``slurm.*`` tags are refused.
    """
    options: dict[str, str | None] = dict.fromkeys(TAG_OPTIONS)
    options.update(partition=partition, qos=qos, account=account)
    for key, value in (tags or {}).items():
        if not key.startswith("slurm."):
            continue
        option = key[len("slurm.") :]
        if option not in TAG_OPTIONS:
            raise ExecutorError(
                f"tag {key!r}: hexflow does not pass the sbatch option --{option}",
                hint=f"tasks may set slurm.{', slurm.'.join(TAG_OPTIONS)}",
                tag=key,
            )
        options[option] = value
    nodes = resources.nodes
    many = nodes > 1
    minutes = None if time_limit is None else max(1, math.ceil(time_limit / 60))
    return JobRequest(
        name=name,
        nodes=nodes,
        ntasks=None if many else 1,
        ntasks_per_node=1 if many else None,
        cpus_per_task=max(1, math.ceil(resources.cpus)),
        gpus=0 if many else resources.gpus,
        gpus_per_node=resources.gpus if many else 0,
        memory_mb=math.ceil(resources.memory / 2**20) if resources.memory else 0,
        time_minutes=minutes,
        partition=options["partition"],
        qos=options["qos"],
        account=options["account"],
        constraint=options["constraint"],
        reservation=options["reservation"],
    )


def job_name(text: str, limit: int = 64) -> str:
    """A job name from any text: unsafe characters become ``_``."""
    return _JOB_NAME_UNSAFE.sub("_", text)[:limit] or "hexflow"


def _checked(option: str, value: object) -> str:
    text = str(value)
    if not _SAFE_VALUE.match(text):
        raise ExecutorError(
            f"refusing --{option}={text!r} in a batch script: it holds a character sbatch "
            "would split or a shell would interpret (space, quote, newline, $, ;, ...)",
            hint="use names and paths made of letters, digits and _ . / : = , + @ % -",
            option=option,
            value=text,
        )
    return text


def _no_nul(value: str, what: str) -> None:
    if "\0" in value:  # everything else is safe inside shlex.quote's single quotes
        raise ExecutorError(f"refusing {what} {value!r} in a batch script: it holds a NUL byte")


__all__ = ["TAG_OPTIONS", "JobRequest", "directives", "format_minutes", "render", "request_for"]
