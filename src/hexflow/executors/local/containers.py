"""The local executor's side of container tasks (engine process): from a ``Launch`` to the
``ContainerJob`` a worker runs (``incontainer``), and from its answer to the end's reason.

Each attempt gets a state directory under the executor's scratch directory (the env file,
a Python task's job and answer; conmon's OOM mark) and a container name unique to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from hexflow.executors.base import Launch
from hexflow.executors.containers.planning import ContainerConfig, plan
from hexflow.executors.containers.request import BindMount
from hexflow.executors.local.incontainer import ContainerJob, python_support
from hexflow.model import TaskKind, format_bytes
from hexflow.model.spec import TaskSpec

PROVENANCE = ("image", "image_id", "image_digest", "runtime")  # what TaskEnded.extra carries


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in text)


class ContainerLauncher:
    def __init__(self, config: ContainerConfig, scratch_dir: str) -> None:
        self.config = config
        self._states = os.path.join(os.path.abspath(scratch_dir), "containers")
        self._python: tuple[tuple[BindMount, ...], dict[str, str]] | None = None

    def job(self, launch: Launch, gpu_ids: Sequence[int]) -> ContainerJob:
        """The container job of this attempt; ``ContainerError`` if it may not run so."""
        spec = launch.spec
        assert spec.image is not None
        key = f"{_safe(launch.run_id)}-{_safe(spec.id)}-{launch.attempt}"
        state_dir = os.path.join(self._states, key)
        env = dict(launch.env)
        extra: tuple[BindMount, ...] = ()
        if spec.kind is TaskKind.PYTHON:
            if self._python is None:
                self._python = python_support()
            mounts, python_env = self._python
            extra = (*mounts, BindMount(state_dir, state_dir))
            env.update(python_env)
        request = plan(
            self.config,
            task=spec.id,
            image=spec.image,
            name=f"hexflow-{key}"[:200],
            workdir=launch.workdir or launch.cwd,
            cwd=launch.cwd,
            state_dir=state_dir,
            mounts=spec.mounts,
            env=env,
            cpus=spec.resources.cpus,
            memory=spec.resources.memory,
            gpu_ids=gpu_ids,
            extra_mounts=extra,
        )
        return ContainerJob(self.config.runtime, request)


def end_reason(limit_reason: str | None, oom: bool) -> str:
    return limit_reason or ("oom" if oom else "exit_code")


def oom_message(spec: TaskSpec, code: int) -> str:
    limit = format_bytes(spec.resources.memory) if spec.resources.memory else "the machine's"
    return (
        f"out of memory: the container was killed at its memory limit of {limit} "
        f"(exit code {code}); ask for more memory"
    )


def signal_code(code: int, signalled: bool) -> int:
    """A container's 128+N for a signal we sent, as a bare command reports it (-N)."""
    return -(code - 128) if signalled and 128 < code < 160 else code
