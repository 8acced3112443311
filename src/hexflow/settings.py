"""Settings: read once from the environment at entry points (CLI, ``Workflow.run``) and
passed down. No module reads the environment on its own.

HEXFLOW_HOME   directory for the default store and run files (default ``./.hexflow``)
HEXFLOW_DB     SQLAlchemy URL of the store (default ``sqlite:///$HEXFLOW_HOME/hexflow.db``)
HEXFLOW_CPUS   cpus the local executor offers (default: all cores)
HEXFLOW_GPUS   GPUs the local executor offers, as ids 0..N-1 (default 0)
HEXFLOW_MEMORY memory the local executor offers (default: all RAM), e.g. ``8G``
HEXFLOW_KILL_GRACE  seconds between SIGTERM and SIGKILL on timeouts (default 5)
HEXFLOW_PREEMPT_GRACE  seconds a preempted task gets to checkpoint and stop (default 30)
HEXFLOW_POLICY_OFF  scheduling policies to switch off, comma-separated, among
               fair_share, edf, admission, backfill, preemption (default: all on)
HEXFLOW_CONTAINER_RUNTIME  podman (default), apptainer, podman-hpc or shifter: what runs
               tasks that name an image (docs/containers.md)
HEXFLOW_CONTAINER_NETWORK  network of container tasks: none or host (default: none with
               podman and podman-hpc, host with apptainer and shifter)
HEXFLOW_MOUNT_ROOTS  host directories container tasks may mount, separated by ':'
               (default: the working directory and HEXFLOW_HOME)
HEXFLOW_EXECUTOR  where tasks run: local (default), slurm or dask (docs/executors.md)
HEXFLOW_SLURM_PARTITION, HEXFLOW_SLURM_GPU_PARTITION, HEXFLOW_SLURM_ACCOUNT  sbatch's
               --partition (for all tasks; for tasks with GPUs) and --account
HEXFLOW_SLURM_QOS  hexflow QoS -> Slurm --qos, e.g. ``realtime=realtime,regular=regular``
HEXFLOW_SLURM_POLL  seconds between two squeue calls (default 3)
HEXFLOW_DASK_SCHEDULER  a Dask scheduler address (default: a local Dask cluster)
HEXFLOW_PILOT_PROVIDER, HEXFLOW_PILOT_CPUS, HEXFLOW_PILOT_WALLTIME, HEXFLOW_PILOT_MAX  for
               HEXFLOW_EXECUTOR=pilot: where pilots come from (slurm, local), each pilot's
               cpus and walltime, and how many at most (docs/executors.md, Pilots)
HEXFLOW_SITES  a sites file (YAML or JSON): run on several sites with failover
               (docs/sites.md); then HEXFLOW_EXECUTOR is not used
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexflow.errors import SpecError
from hexflow.model.container import CONTAINER_RUNTIMES
from hexflow.model.resources import parse_duration, parse_memory
from hexflow.model.sites import SitesConfig, parse_sites

POLICIES = frozenset({"fair_share", "edf", "admission", "backfill", "preemption"})


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    cpus: float | None = None
    gpus: int = 0
    memory: int | None = None
    kill_grace: float = 5.0
    preempt_grace: float = 30.0
    policy_off: frozenset[str] = frozenset()
    workdir: Path = Path(".")  # where runs execute: the current directory at the entry point
    container_runtime: str = "podman"
    container_network: str = ""  # none | host; empty: the runtime's default
    mount_roots: tuple[Path, ...] = ()  # empty: the workdir and the home
    executor: ExecutorSettings = field(default_factory=lambda: ExecutorSettings())
    sites: SitesConfig | None = None  # HEXFLOW_SITES, read and checked at the entry point

    @property
    def allowed_mount_roots(self) -> tuple[Path, ...]:
        return self.mount_roots or (self.workdir, self.home)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("HEXFLOW_HOME") or (cwd or Path.cwd()) / ".hexflow").resolve()
        db_url = env.get("HEXFLOW_DB") or f"sqlite:///{home / 'hexflow.db'}"
        try:
            cpus = float(env["HEXFLOW_CPUS"]) if env.get("HEXFLOW_CPUS") else None
            gpus = int(env.get("HEXFLOW_GPUS") or 0)
        except ValueError as exc:
            raise SpecError(
                f"HEXFLOW_CPUS/HEXFLOW_GPUS must be numbers: {exc}", field="environment"
            ) from None
        if (cpus is not None and cpus <= 0) or gpus < 0:
            raise SpecError("HEXFLOW_CPUS must be > 0 and HEXFLOW_GPUS >= 0", field="environment")
        memory = (
            parse_memory(env["HEXFLOW_MEMORY"], "HEXFLOW_MEMORY")
            if env.get("HEXFLOW_MEMORY")
            else None
        )
        grace = parse_duration(env.get("HEXFLOW_KILL_GRACE") or 5, "HEXFLOW_KILL_GRACE") or 5.0
        preempt_grace = parse_duration(
            env.get("HEXFLOW_PREEMPT_GRACE") or 30, "HEXFLOW_PREEMPT_GRACE"
        )
        off = frozenset(
            p.strip() for p in env.get("HEXFLOW_POLICY_OFF", "").split(",") if p.strip()
        )
        unknown = sorted(off - POLICIES)
        if unknown:
            raise SpecError(
                f"HEXFLOW_POLICY_OFF: unknown policy {', '.join(unknown)}",
                hint=f"name some of: {', '.join(sorted(POLICIES))}",
                field="environment",
            )
        runtime = env.get("HEXFLOW_CONTAINER_RUNTIME") or "podman"
        if runtime not in CONTAINER_RUNTIMES:
            raise SpecError(
                f"HEXFLOW_CONTAINER_RUNTIME: unknown container runtime {runtime!r}",
                hint=f"name one of: {', '.join(CONTAINER_RUNTIMES)}",
                field="environment",
            )
        network = env.get("HEXFLOW_CONTAINER_NETWORK") or ""
        if network not in ("", "none", "host"):
            raise SpecError(
                f"HEXFLOW_CONTAINER_NETWORK: expected none or host, got {network!r}",
                field="environment",
            )
        roots = tuple(
            Path(p).resolve() for p in env.get("HEXFLOW_MOUNT_ROOTS", "").split(":") if p.strip()
        )
        return cls(
            home=home,
            db_url=db_url,
            cpus=cpus,
            gpus=gpus,
            memory=memory,
            kill_grace=grace,
            preempt_grace=preempt_grace if preempt_grace is not None else 30.0,
            policy_off=off,
            workdir=(cwd or Path.cwd()).resolve(),
            container_runtime=runtime,
            container_network=network,
            mount_roots=roots,
            executor=ExecutorSettings.from_env(env),
            sites=load_sites(Path(env["HEXFLOW_SITES"])) if env.get("HEXFLOW_SITES") else None,
        )


EXECUTORS = ("local", "slurm", "dask", "pilot")
_PILOT_ENV = {
    "HEXFLOW_PILOT_PROVIDER": "provider",
    "HEXFLOW_PILOT_CPUS": "cpus",
    "HEXFLOW_PILOT_WALLTIME": "walltime",
    "HEXFLOW_PILOT_MAX": "max_pilots",
}


def load_sites(path: Path) -> SitesConfig:
    """The sites file at ``path`` (YAML or JSON), checked; errors name the file and field."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            f"HEXFLOW_SITES: cannot read {path}: {exc.strerror or exc}",
            hint="point HEXFLOW_SITES at a sites file (docs/sites.md)",
            field="environment",
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML or JSON: {exc}", field="sites") from None
    return parse_sites(doc, str(path))


@dataclass(frozen=True)
class ExecutorSettings:
    """Which executor runs tasks (``HEXFLOW_EXECUTOR``) and the options of the batch and
    distributed ones (``HEXFLOW_SLURM_*``, ``HEXFLOW_DASK_*``)."""

    name: str = "local"
    slurm_partition: str | None = None
    slurm_gpu_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: tuple[tuple[str, str], ...] = ()  # (hexflow QoS, Slurm QoS) pairs
    slurm_poll: float = 3.0
    dask_scheduler: str | None = None
    pilot: Mapping[str, Any] = field(default_factory=dict)  # the pilot site options

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExecutorSettings:
        from hexflow.model.qos import QoS

        name = (env.get("HEXFLOW_EXECUTOR") or "local").strip().lower()
        if name not in EXECUTORS:
            raise SpecError(
                f"HEXFLOW_EXECUTOR: unknown executor {name!r}",
                hint=f"name one of: {', '.join(EXECUTORS)}",
                field="environment",
            )
        qos = []
        for pair in (env.get("HEXFLOW_SLURM_QOS") or "").split(","):
            if not pair.strip():
                continue
            ours, sep, theirs = (part.strip() for part in pair.partition("="))
            if not sep or not theirs or ours not in QoS.__members__.values():
                raise SpecError(
                    f"HEXFLOW_SLURM_QOS: cannot read {pair.strip()!r}",
                    hint="write hexflow=slurm pairs, e.g. realtime=realtime,regular=regular; "
                    f"hexflow's classes are {', '.join(q.value for q in QoS)}",
                    field="environment",
                )
            qos.append((ours, theirs))
        poll = parse_duration(env.get("HEXFLOW_SLURM_POLL") or 3, "HEXFLOW_SLURM_POLL")
        return cls(
            name=name,
            slurm_partition=env.get("HEXFLOW_SLURM_PARTITION") or None,
            slurm_gpu_partition=env.get("HEXFLOW_SLURM_GPU_PARTITION") or None,
            slurm_account=env.get("HEXFLOW_SLURM_ACCOUNT") or None,
            slurm_qos=tuple(qos),
            slurm_poll=poll if poll is not None else 3.0,
            dask_scheduler=env.get("HEXFLOW_DASK_SCHEDULER") or None,
            pilot=pilot_options(env),
        )


def pilot_options(env: Mapping[str, str]) -> dict[str, Any]:
    """``HEXFLOW_PILOT_*`` as the options of a pilot site (checked as a sites file's)."""
    block: dict[str, Any] = {}
    for name, key in _PILOT_ENV.items():
        value = env.get(name)
        if not value:
            continue
        if key in ("cpus", "max_pilots"):
            try:
                block[key] = int(value)
            except ValueError:
                raise SpecError(f"{name}: expected a whole number, got {value!r}") from None
        else:
            block[key] = value
    if not block:
        return {}
    site = parse_sites({"sites": {"pilot": {"executor": "pilot", "pilot": block}}}, "environment")
    return dict(site.sites[0].options)
