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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hexflow.errors import SpecError
from hexflow.model.resources import parse_duration, parse_memory

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
        )
