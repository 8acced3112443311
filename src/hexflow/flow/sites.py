"""Sites at run time: each site's executor and health check built from the sites file, the
admin overrides, and the monitor that tells the engine (and ``hexflow sites``, and the
server) where each site stands.

A site's state is ``model.sites.site_state``: an admin override (``hexflow sites set``,
kept in ``$HEXFLOW_HOME/sites/overrides.json`` so every engine and server of the home sees
it), else an active planned outage, else the health check — ``sinfo`` for Slurm and pilot
sites, a connection to the scheduler for Dask, always up for local. A check that cannot
run at all (the controller does not answer) makes the site degraded, and down after
``DOWN_AFTER`` such checks in a row: one slow answer does not move work away.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow.engine.sites import SiteBinding, SiteSet
from hexflow.errors import SpecError
from hexflow.executors.base import Executor
from hexflow.model.sites import (
    Health,
    SiteOverride,
    SitesConfig,
    SiteSpec,
    SiteState,
    check_site_name,
    site_state,
)
from hexflow.settings import Settings

DOWN_AFTER = 2  # failed checks in a row that make a site down
HealthCheck = Callable[[], Health]


# ---------------------------------------------------------------- admin overrides
class Overrides:
    """Admin overrides of site states, in one small JSON file written atomically."""

    def __init__(self, home: Path) -> None:
        self.path = home / "sites" / "overrides.json"

    def read(self) -> dict[str, SiteOverride]:
        try:
            doc = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        out = {}
        for name, item in doc.items():
            try:
                out[name] = SiteOverride(
                    SiteState(item["state"]),
                    str(item.get("reason", "")),
                    float(item.get("set_at", 0.0)),
                    str(item.get("by", "")),
                )
            except (KeyError, ValueError, TypeError):
                continue  # a hand-edited entry we cannot read is ignored, not fatal
        return out

    def set(self, site: str, state: SiteState, reason: str = "", by: str = "") -> SiteOverride:
        check_site_name(site)
        override = SiteOverride(state, reason, time.time(), by)
        self._write({**self.read(), site: override})
        return override

    def clear(self, site: str) -> bool:
        current = self.read()
        if current.pop(site, None) is None:
            return False
        self._write(current)
        return True

    def _write(self, overrides: Mapping[str, SiteOverride]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {
            name: {"state": o.state.value, "reason": o.reason, "set_at": o.set_at, "by": o.by}
            for name, o in overrides.items()
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.path)


# ---------------------------------------------------------------- the monitor
@dataclass
class _Seen:
    health: Health | None = None
    failures: int = 0
    error: str = ""


class SiteMonitor:
    """Each site's state now (the engine's ``SiteObserver``; also ``hexflow sites``)."""

    def __init__(
        self,
        specs: list[SiteSpec],
        checks: Mapping[str, HealthCheck],
        overrides: Overrides | None,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.checks = dict(checks)
        self.overrides = overrides
        self._seen = {name: _Seen() for name in self.specs}
        self._lock = threading.Lock()

    def observe(self, now: float, only: str | None = None) -> dict[str, tuple[SiteState, str]]:
        overrides = self.overrides.read() if self.overrides is not None else {}
        out = {}
        for name, spec in self.specs.items():
            if only is not None and name != only:
                continue
            health = self._check(name) if name not in overrides else None
            out[name] = site_state(spec, health, overrides.get(name), now)
        return out

    def _check(self, name: str) -> Health | None:
        check = self.checks.get(name)
        if check is None:
            return None
        seen = self._seen[name]
        try:
            health = check()
        except Exception as exc:  # noqa: BLE001 - the check could not run: count it
            with self._lock:
                seen.failures += 1
                seen.error = f"health check failed: {exc}"
                failures = seen.failures
            state = SiteState.DOWN if failures >= DOWN_AFTER else SiteState.DEGRADED
            return Health(state, f"{seen.error} ({failures} in a row)")
        with self._lock:
            seen.failures, seen.health = 0, health
        return health

    def status(self, now: float) -> list[dict[str, Any]]:
        """Every site, its state and why, and what the sites file says of it (JSON-ready)."""
        states = self.observe(now)
        overrides = self.overrides.read() if self.overrides is not None else {}
        rows = []
        for name, spec in self.specs.items():
            state, reason = states[name]
            override = overrides.get(name)
            rows.append(
                {
                    "name": name,
                    "executor": spec.executor,
                    "state": state.value,
                    "reason": reason,
                    "priority": spec.priority,
                    "projects": sorted(spec.projects),
                    "pools": [_pool(p) for p in spec.pools],
                    "storage": list(spec.storage),
                    "outages": [
                        {
                            "start": o.start,
                            "end": o.end,
                            "reason": o.reason,
                            "status": "active"
                            if o.active(now)
                            else ("planned" if o.start > now else "completed"),
                        }
                        for o in spec.outages
                    ],
                    "override": None
                    if override is None
                    else {
                        "state": override.state.value,
                        "reason": override.reason,
                        "set_at": override.set_at,
                        "by": override.by,
                    },
                    "description": spec.description,
                }
            )
        return rows


def _pool(pool: Any) -> dict[str, Any]:
    return {
        "name": pool.name,
        "nodes": pool.nodes,
        "cpus": pool.cpus,
        "memory": pool.memory,
        "gpus": pool.gpus,
    }


# ---------------------------------------------------------------- building sites
def implicit_sites(settings: Settings) -> SitesConfig:
    """Without a sites file: one site, the executor ``HEXFLOW_EXECUTOR`` chooses."""
    ex = settings.executor
    options: dict[str, Any] = {}
    if ex.name == "slurm":
        options = {
            k: v for k, v in (("partition", ex.slurm_partition), ("account", ex.slurm_account)) if v
        }
    elif ex.name == "dask" and ex.dask_scheduler:
        options = {"scheduler": ex.dask_scheduler}
    elif ex.name == "pilot":
        options = dict(ex.pilot)
    return SitesConfig((SiteSpec(ex.name, ex.name, options=options),), source="HEXFLOW_EXECUTOR")


def sites_config(settings: Settings) -> SitesConfig:
    return settings.sites or implicit_sites(settings)


def health_check(spec: SiteSpec, settings: Settings) -> HealthCheck | None:
    """How to check a site (None: nothing to check, always up)."""
    o = spec.options
    if spec.executor in ("slurm", "pilot"):
        if spec.executor == "pilot" and o.get("provider", "slurm") == "local":
            return None
        from hexflow.executors.slurm.commands import SlurmCommands
        from hexflow.executors.slurm.health import slurm_health

        commands = SlurmCommands(timeout=10.0, conf=o.get("conf"))
        partition = o.get("partition") or (
            settings.executor.slurm_partition if settings.sites is None else None
        )
        parts = [partition] if partition else []
        return lambda: slurm_health(commands, parts)
    if spec.executor == "dask":
        from hexflow.executors.dask.health import dask_health

        address = o.get("scheduler")
        return lambda: dask_health(address)
    return None


def site_executor(spec: SiteSpec, settings: Settings) -> Executor:
    """The executor of one site, from its block in the sites file."""
    o = spec.options
    home = settings.home
    if spec.executor == "local":
        from hexflow.executors.local import LocalExecutor
        from hexflow.flow.runtime import container_config

        return LocalExecutor(
            cpus=o.get("cpus", settings.cpus),
            memory=o.get("memory", settings.memory),
            gpus=o.get("gpus", settings.gpus),
            scratch_dir=str(home / "scratch" / spec.name),
            kill_grace=settings.kill_grace,
            containers=container_config(settings),
        )
    if spec.executor == "slurm":
        from hexflow.executors.slurm import SlurmConfig, SlurmExecutor
        from hexflow.flow.runtime import container_config

        qos = _qos_pairs(o.get("qos"), spec.name) or dict(settings.executor.slurm_qos)
        return SlurmExecutor(
            SlurmConfig(
                job_dir=str(home / "slurm" / spec.name),
                partition=o.get("partition"),
                gpu_partition=o.get("gpu_partition"),
                account=o.get("account"),
                qos=qos,
                poll_interval=o.get("poll", settings.executor.slurm_poll),
                kill_grace=settings.kill_grace,
                conf=o.get("conf"),
            ),
            containers=container_config(settings),
        )
    if spec.executor == "dask":
        from hexflow.executors.dask import DaskExecutor

        workers = o.get("workers") or (int(settings.cpus) if settings.cpus else None)
        return DaskExecutor(
            o.get("scheduler"),
            workers=max(1, workers) if workers else None,
            local_directory=str(home / "dask" / spec.name),
            **({"backlog": o["backlog"]} if o.get("backlog") else {}),
        )
    return pilot_executor(spec, settings)


def pilot_executor(spec: SiteSpec, settings: Settings) -> Executor:
    from hexflow.executors.pilot.executor import PilotExecutor, pilot_config
    from hexflow.executors.pilot.provider import LocalProvider, Provider

    o = dict(spec.options)
    kind = o.pop("provider", "slurm")
    provider: Provider
    if kind == "local":
        provider = LocalProvider()
    elif kind == "slurm":
        from hexflow.executors.slurm.commands import SlurmCommands
        from hexflow.executors.slurm.provider import SlurmProvider

        ex = settings.executor
        provider = SlurmProvider(
            SlurmCommands(conf=o.pop("conf", None)),
            job_dir=str(settings.home / "slurm" / f"{spec.name}-pilots"),
            partition=o.pop("partition", None) or ex.slurm_partition,
            account=o.pop("account", None) or ex.slurm_account,
            qos=o.pop("qos", None),
        )
    else:
        raise SpecError(
            f"site {spec.name}: unknown pilot provider {kind!r}",
            hint="provider: slurm or local",
            field=f"sites.{spec.name}.pilot.provider",
        )
    for key in ("conf", "partition", "account", "qos"):
        o.pop(key, None)
    config = pilot_config(
        channel_dir=str(settings.home / "pilots" / spec.name), kill_grace=settings.kill_grace, **o
    )
    return PilotExecutor(config, provider)


def _qos_pairs(text: str | None, site: str) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for pair in text.split(","):
        ours, sep, theirs = (p.strip() for p in pair.partition("="))
        if not sep or not ours or not theirs:
            raise SpecError(
                f"site {site}: slurm.qos: cannot read {pair!r}",
                hint="write hexflow=slurm pairs, e.g. realtime=realtime,regular=regular",
                field=f"sites.{site}.slurm.qos",
            )
        out[ours] = theirs
    return out


def monitor(settings: Settings) -> SiteMonitor:
    """The monitor of the configured sites (no executor is built)."""
    config = sites_config(settings)
    checks = {
        s.name: check for s in config.sites if (check := health_check(s, settings)) is not None
    }
    return SiteMonitor(list(config.sites), checks, Overrides(settings.home))


def site_set(settings: Settings) -> SiteSet | None:
    """Every configured site with its executor, for the engine; None without a sites file."""
    config = settings.sites
    if config is None:
        return None
    bindings = [SiteBinding(s.name, site_executor(s, settings), s) for s in config.sites]
    return SiteSet(
        bindings,
        observer=monitor(settings),
        check_interval=config.check_interval,
        move_timeout=config.move_timeout,
    )


__all__ = [
    "DOWN_AFTER",
    "Overrides",
    "SiteMonitor",
    "health_check",
    "implicit_sites",
    "monitor",
    "site_executor",
    "site_set",
    "sites_config",
]
