"""Sites: the places that run work, as the sites file describes them, and their state.

Pure: ``parse_sites`` turns a loaded sites document (YAML or JSON, already parsed) into a
``SitesConfig`` or raises ``SpecError`` naming the bad field (``sites.hpc.slurm.poll``);
``site_state`` combines a health check, an admin override and the planned outages into one
``SiteState`` with its reason. Invariants: site names are unique and safe (letters, digits,
``_ . -``); an outage ends after it starts; a site's executor options are the ones its kind
takes, nothing else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hexflow.errors import SpecError
from hexflow.model.resources import parse_duration, parse_memory

SITE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
EXECUTOR_KINDS = ("local", "slurm", "dask", "pilot")
# The options each executor kind takes in its block (``slurm: {partition: ...}``), and how
# each is read: "text", "duration", "memory", "number", "whole".
EXECUTOR_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "local": {"cpus": "number", "memory": "memory", "gpus": "whole"},
    "slurm": {
        "partition": "text",
        "gpu_partition": "text",
        "account": "text",
        "qos": "text",
        "conf": "text",
        "poll": "duration",
    },
    "dask": {"scheduler": "text", "workers": "whole", "backlog": "number"},
    "pilot": {
        "provider": "text",  # slurm (default) or local
        "partition": "text",
        "account": "text",
        "qos": "text",
        "conf": "text",
        "cpus": "whole",  # per pilot (one node each)
        "memory": "memory",
        "gpus": "whole",
        "walltime": "duration",  # of each pilot's allocation
        "min_pilots": "whole",
        "max_pilots": "whole",
        "idle_timeout": "duration",
        "heartbeat_timeout": "duration",
        "task_walltime": "duration",  # estimate for tasks without a time limit
    },
}
TOP_KEYS = ("sites", "check_interval", "move_timeout")
SITE_KEYS = (
    "executor",
    "priority",
    "projects",
    "pools",
    "storage",
    "outages",
    "description",
    "default_walltime",
    *EXECUTOR_KINDS,
)
POOL_KEYS = ("name", "nodes", "cpus", "memory", "gpus")
OUTAGE_KEYS = ("start", "end", "reason")


class SiteState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"  # usable, but placed on only when no site is up
    DOWN = "down"  # nothing new goes there; its queued and running work moves


@dataclass(frozen=True, slots=True)
class Outage:
    """A planned outage: from ``start`` to ``end`` (Unix seconds; None: until cleared)."""

    start: float
    end: float | None = None
    reason: str = ""

    def active(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)

    def describe(self) -> str:
        until = "until further notice" if self.end is None else f"until {_iso(self.end)}"
        return f"planned outage from {_iso(self.start)} {until}" + (
            f" ({self.reason})" if self.reason else ""
        )


@dataclass(frozen=True, slots=True)
class SitePool:
    """A pool of identical nodes at a site (per node: cpus, memory in bytes, gpus)."""

    name: str
    nodes: int
    cpus: float
    memory: int = 0
    gpus: int = 0


@dataclass(frozen=True, slots=True)
class SiteSpec:
    name: str
    executor: str  # one of EXECUTOR_KINDS
    priority: int = 0  # higher first, among sites in the same state
    projects: frozenset[str] = frozenset()  # who may run there; empty: every project
    pools: tuple[SitePool, ...] = ()
    storage: tuple[str, ...] = ()  # the storage tiers it offers (docs/data.md)
    outages: tuple[Outage, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # the executor's block
    description: str = ""
    # what a task without a time limit is taken to need, when judging whether it ends
    # before a planned outage
    default_walltime: float = 3600.0

    def allows(self, project: str | None) -> bool:
        return not self.projects or (project is not None and project in self.projects)

    def outage_at(self, now: float) -> Outage | None:
        return next((o for o in self.outages if o.active(now)), None)

    def next_outage(self, now: float) -> Outage | None:
        """The earliest outage that has not ended (active or to come)."""
        future = [o for o in self.outages if o.end is None or o.end > now]
        return min(future, key=lambda o: o.start) if future else None


@dataclass(frozen=True, slots=True)
class Health:
    """What a health check saw (``sinfo``, the Dask scheduler...)."""

    state: SiteState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SiteOverride:
    """An administrator's word on a site; it wins over health checks until cleared."""

    state: SiteState
    reason: str = ""
    set_at: float = 0.0
    by: str = ""


@dataclass(frozen=True, slots=True)
class SitesConfig:
    sites: tuple[SiteSpec, ...]
    check_interval: float = 2.0  # seconds between two rounds of health checks
    move_timeout: float = 10.0  # how long a down site may take to confirm it stopped a task
    source: str = ""

    def __post_init__(self) -> None:
        if not self.sites:
            raise SpecError(f"{self.source or 'sites'}: no site is described", field="sites")

    def names(self) -> list[str]:
        return [s.name for s in self.sites]

    def get(self, name: str) -> SiteSpec:
        for site in self.sites:
            if site.name == name:
                return site
        raise SpecError(
            f"no site {name!r}",
            hint=f"the sites are {', '.join(self.names())}",
            field="site",
        )


def site_state(
    spec: SiteSpec | None,
    health: Health | None,
    override: SiteOverride | None,
    now: float,
) -> tuple[SiteState, str]:
    """One site's state and why: an admin override, else an active planned outage, else the
    health check (no check: up)."""
    if override is not None:
        return override.state, f"set {override.state.value} by an administrator" + (
            f": {override.reason}" if override.reason else ""
        )
    outage = spec.outage_at(now) if spec is not None else None
    if outage is not None:
        return SiteState.DOWN, outage.describe()
    if health is not None:
        return health.state, health.reason
    return SiteState.UP, ""


def check_site_name(name: object, where: str = "site") -> str:
    if not isinstance(name, str) or not SITE_NAME.match(name):
        raise SpecError(
            f"{where}: {name!r} is not a site name",
            hint="a site name starts with a letter and holds letters, digits, '_', '.', '-' "
            "(at most 64)",
            field=where,
        )
    return name


def site_names(site: object = None, sites: object = None, where: str = "task") -> tuple[str, ...]:
    """The ``site=`` / ``sites=[...]`` options of a task as one tuple (empty: any site)."""
    if site is not None and sites is not None:
        raise SpecError(
            f"{where}: give site= (one site) or sites= (a list), not both",
            field="sites",
        )
    if site is not None:
        return (check_site_name(site, "site"),)
    if sites is None:
        return ()
    if isinstance(sites, str) or not isinstance(sites, list | tuple | set | frozenset):
        raise SpecError(
            f"{where}: sites= takes a list of site names, got {sites!r}",
            hint="write sites=['perlmutter', 'local'], or site='perlmutter' for one",
            field="sites",
        )
    names = tuple(dict.fromkeys(check_site_name(s, "sites") for s in sites))
    if not names:
        raise SpecError(f"{where}: sites= is empty", hint="name at least one site", field="sites")
    return names


# ---------------------------------------------------------------- the sites file
def parse_sites(doc: object, source: str = "sites file") -> SitesConfig:
    """A ``SitesConfig`` from a loaded document; errors name the file and the field."""
    top = _mapping(doc, source, "")
    _keys(top, TOP_KEYS, source, "")
    body = _mapping(top.get("sites"), source, "sites")
    if not body:
        raise SpecError(
            f"{source}: sites: no site is described",
            hint="describe at least one site, e.g. sites: {local: {executor: local}}",
            field="sites",
        )
    sites = tuple(_site(name, spec, source) for name, spec in body.items())
    interval = _duration(top.get("check_interval", 2.0), source, "check_interval")
    move = _duration(top.get("move_timeout", 10.0), source, "move_timeout")
    return SitesConfig(sites=sites, check_interval=interval, move_timeout=move, source=source)


def _site(name: object, doc: object, source: str) -> SiteSpec:
    where = f"sites.{name}"
    check_site_name(name, f"{source}: {where}")
    assert isinstance(name, str)
    body = _mapping(doc, source, where)
    _keys(body, SITE_KEYS, source, where)
    kind = body.get("executor")
    if kind not in EXECUTOR_KINDS:
        raise SpecError(
            f"{source}: {where}.executor: expected one of {', '.join(EXECUTOR_KINDS)}, "
            f"got {kind!r}",
            field=f"{where}.executor",
        )
    for other in EXECUTOR_KINDS:
        if other != kind and other in body:
            raise SpecError(
                f"{source}: {where}.{other}: a {kind} site takes a `{kind}:` block, not `{other}:`",
                field=f"{where}.{other}",
            )
    options = _options(kind, body.get(kind), source, f"{where}.{kind}")
    priority = body.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise SpecError(
            f"{source}: {where}.priority: expected a whole number, got {priority!r}",
            field=f"{where}.priority",
        )
    projects = _names(body.get("projects"), source, f"{where}.projects")
    storage = _names(body.get("storage"), source, f"{where}.storage")
    pools = tuple(
        _pool(item, source, f"{where}.pools[{i}]")
        for i, item in enumerate(_list(body.get("pools"), source, f"{where}.pools"))
    )
    outages = tuple(
        _outage(item, source, f"{where}.outages[{i}]")
        for i, item in enumerate(_list(body.get("outages"), source, f"{where}.outages"))
    )
    default_walltime = _duration(
        body.get("default_walltime", 3600.0), source, f"{where}.default_walltime"
    )
    description = body.get("description", "")
    if not isinstance(description, str):
        raise SpecError(
            f"{source}: {where}.description: expected text", field=f"{where}.description"
        )
    return SiteSpec(
        name=name,
        executor=kind,
        priority=priority,
        projects=frozenset(projects),
        pools=pools,
        storage=storage,
        outages=outages,
        options=options,
        description=description,
        default_walltime=default_walltime,
    )


def _options(kind: str, doc: object, source: str, where: str) -> dict[str, Any]:
    if doc is None:
        return {}
    body = _mapping(doc, source, where)
    allowed = EXECUTOR_OPTIONS[kind]
    _keys(body, tuple(allowed), source, where)
    out: dict[str, Any] = {}
    for key, value in body.items():
        how, at = allowed[key], f"{where}.{key}"
        if how == "text":
            if not isinstance(value, str) or not value.strip():
                raise SpecError(f"{source}: {at}: expected text, got {value!r}", field=at)
            out[key] = value.strip()
        elif how == "duration":
            out[key] = _duration(value, source, at)
        elif how == "memory":
            out[key] = _model(parse_memory, source, at, value)
        else:
            out[key] = _number(value, source, at, whole=how == "whole")
    return out


def _pool(doc: object, source: str, where: str) -> SitePool:
    body = _mapping(doc, source, where)
    _keys(body, POOL_KEYS, source, where)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{source}: {where}.name: a pool needs a name", field=f"{where}.name")
    nodes = _number(body.get("nodes", 1), source, f"{where}.nodes", whole=True)
    cpus = _number(body.get("cpus", 1), source, f"{where}.cpus")
    if nodes < 1 or cpus <= 0:
        raise SpecError(
            f"{source}: {where}: a pool has at least one node with some cpus", field=where
        )
    memory = _model(parse_memory, source, f"{where}.memory", body.get("memory", 0))
    gpus = _number(body.get("gpus", 0), source, f"{where}.gpus", whole=True)
    return SitePool(name, int(nodes), float(cpus), memory, int(gpus))


def _outage(doc: object, source: str, where: str) -> Outage:
    body = _mapping(doc, source, where)
    _keys(body, OUTAGE_KEYS, source, where)
    if "start" not in body:
        raise SpecError(f"{source}: {where}.start: an outage needs a start", field=where)
    start = _time(body["start"], source, f"{where}.start")
    end = None if body.get("end") is None else _time(body["end"], source, f"{where}.end")
    if end is not None and end <= start:
        raise SpecError(
            f"{source}: {where}: the outage ends ({_iso(end)}) before it starts ({_iso(start)})",
            field=f"{where}.end",
        )
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise SpecError(f"{source}: {where}.reason: expected text", field=f"{where}.reason")
    return Outage(start, end, reason)


# ---------------------------------------------------------------- small readers
def _mapping(doc: object, source: str, where: str) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        at = f"{where}: " if where else ""
        raise SpecError(
            f"{source}: {at}expected a mapping, got {type(doc).__name__}",
            field=where or "sites",
        )
    return doc


def _list(doc: object, source: str, where: str) -> list[Any]:
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise SpecError(f"{source}: {where}: expected a list", field=where)
    return doc


def _keys(body: Mapping[str, Any], allowed: tuple[str, ...], source: str, where: str) -> None:
    import difflib

    for key in body:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            at = f"{where}.{key}" if where else str(key)
            raise SpecError(
                f"{source}: {at}: unknown key" + (f"; did you mean {close[0]!r}?" if close else ""),
                hint=f"keys here: {', '.join(allowed)}",
                field=at,
            )


def _names(doc: object, source: str, where: str) -> tuple[str, ...]:
    items = _list(doc, source, where)
    for item in items:
        if not isinstance(item, str) or not item:
            raise SpecError(f"{source}: {where}: expected a list of names", field=where)
    return tuple(items)


def _number(value: object, source: str, where: str, whole: bool = False) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or (whole and not float(value).is_integer())
        or value < 0
    ):
        kind = "a whole number >= 0" if whole else "a number >= 0"
        raise SpecError(f"{source}: {where}: expected {kind}, got {value!r}", field=where)
    return int(value) if whole else float(value)


def _duration(value: object, source: str, where: str) -> float:
    seconds = _model(parse_duration, source, where, value)
    if seconds is None or seconds <= 0:
        raise SpecError(f"{source}: {where}: expected a positive duration", field=where)
    return float(seconds)


def _model(fn: Any, source: str, where: str, value: object) -> Any:
    """``fn(value, where)`` (a parser whose messages start with the field's name)."""
    try:
        return fn(value, where)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc.message}", hint=exc.hint, field=where) from None


def _time(value: object, source: str, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime):  # YAML reads unquoted ISO times itself
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()
    raise SpecError(
        f"{source}: {where}: expected Unix seconds or an ISO 8601 time "
        f"(2026-12-01T08:00:00+00:00), got {value!r}",
        field=where,
    )


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


__all__ = [
    "EXECUTOR_KINDS",
    "Health",
    "Outage",
    "SiteOverride",
    "SitePool",
    "SiteSpec",
    "SiteState",
    "SitesConfig",
    "check_site_name",
    "parse_sites",
    "site_names",
    "site_state",
]
