"""Sites: the places a server can run work, with their status (pools, nodes, utilization,
queue depth, outages), for ``/api/v1/sites`` and the SFAPI facade's ``status`` routes.

A ``Site`` is anything with a name that reports a ``SiteStatus``. The server registers its
own executor as the ``LocalSite``; Slurm and Dask sites (executors/) plug in through
``SiteRegistry.register``. Site status holds no project data: only counts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hexflow.errors import NotFound


@dataclass(frozen=True)
class SiteOutage:
    """An announced outage of a site (times are Unix seconds; ``end`` None: open-ended)."""

    site: str
    start: float
    end: float | None = None
    description: str = ""
    notes: str = ""

    def status(self, now: float) -> str:
        """SFAPI's words: Planned (future), Active (now), Completed (past)."""
        if now < self.start:
            return "Planned"
        if self.end is None or now < self.end:
            return "Active"
        return "Completed"


@dataclass(frozen=True)
class Pool:
    name: str
    nodes: int
    cpus: float  # per node
    memory: int  # bytes per node
    gpus: int  # per node


@dataclass(frozen=True)
class Node:
    name: str
    pool: str
    state: str  # "up", "down", "draining"
    cpus_used: float
    gpus_used: int


@dataclass(frozen=True)
class SiteStatus:
    name: str
    kind: str  # "local", "slurm", "dask"
    state: str  # "active", "degraded", "unavailable" (as SFAPI's Status)
    description: str
    pools: list[Pool]
    nodes: list[Node]
    utilization: dict[str, float]  # cpus/gpus fraction in use
    queue: dict[str, int]  # runs_queued, runs_active, tasks_waiting, tasks_running
    outages: list[SiteOutage] = field(default_factory=list)

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "description": self.description,
            "pools": [vars(p) for p in self.pools],
            "nodes": [vars(n) for n in self.nodes],
            "utilization": self.utilization,
            "queue": self.queue,
            "outages": [{**vars(o), "status": o.status(now)} for o in self.outages],
        }


class Site(Protocol):
    name: str

    def status(self, now: float) -> SiteStatus: ...


@dataclass(frozen=True)
class Usage:
    """What the server's runs hold and wait for now (from the database and run manager)."""

    cpus_used: float
    gpus_used: int
    tasks_running: int
    tasks_waiting: int
    runs_queued: int
    runs_active: int


class LocalSite:
    """The server's own local executor: one pool of one node, this host."""

    kind = "local"

    def __init__(
        self,
        name: str,
        *,
        cpus: float | None,
        memory: int | None,
        gpus: int,
        usage: Callable[[], Usage],
        outages: Iterable[SiteOutage] = (),
    ) -> None:
        import psutil

        self.name = name
        self._cpus = float(cpus if cpus is not None else (os.cpu_count() or 1))
        self._memory = int(memory if memory is not None else psutil.virtual_memory().total)
        self._gpus = gpus
        self._usage = usage
        self._outages = [o for o in outages if o.site == name]

    def status(self, now: float) -> SiteStatus:
        use = self._usage()
        active_outage = any(o.status(now) == "Active" for o in self._outages)
        pool = Pool("local", 1, self._cpus, self._memory, self._gpus)
        node = Node(socket.gethostname(), "local", "up", use.cpus_used, use.gpus_used)
        return SiteStatus(
            name=self.name,
            kind=self.kind,
            state="unavailable" if active_outage else "active",
            description=f"the hexflow server's local executor on {node.name}",
            pools=[pool],
            nodes=[node],
            utilization={
                "cpus": round(min(1.0, use.cpus_used / self._cpus), 4) if self._cpus else 0.0,
                "gpus": round(min(1.0, use.gpus_used / self._gpus), 4) if self._gpus else 0.0,
            },
            queue={
                "runs_queued": use.runs_queued,
                "runs_active": use.runs_active,
                "tasks_waiting": use.tasks_waiting,
                "tasks_running": use.tasks_running,
            },
            outages=list(self._outages),
        )


# hexflow's site states (docs/sites.md) in SFAPI's words
SFAPI_STATE = {"up": "active", "degraded": "degraded", "down": "unavailable"}


class MonitoredSite:
    """A site of the sites file (HEXFLOW_SITES), its state from the same monitor the
    engines use (health checks, admin overrides, planned outages), cached for ``ttl``
    seconds so that a busy status page does not run ``sinfo`` per request."""

    def __init__(
        self,
        name: str,
        kind: str,
        rows: Callable[[float], list[dict[str, Any]]],
    ) -> None:
        self.name = name
        self.kind = kind
        self._rows = rows

    def status(self, now: float) -> SiteStatus:
        row = next(r for r in self._rows(now) if r["name"] == self.name)
        pools = [
            Pool(p["name"], p["nodes"], p["cpus"], p["memory"], p["gpus"]) for p in row["pools"]
        ]
        outages = [SiteOutage(self.name, o["start"], o["end"], o["reason"]) for o in row["outages"]]
        why = f" ({row['reason']})" if row["reason"] else ""
        return SiteStatus(
            name=self.name,
            kind=self.kind,
            state=SFAPI_STATE.get(row["state"], "unavailable"),
            description=(row["description"] or f"{self.kind} site {self.name}") + why,
            pools=pools,
            nodes=[],
            utilization={},
            queue={},
            outages=outages,
        )


def monitored_sites(
    status: Callable[[float], list[dict[str, Any]]], ttl: float = 5.0
) -> list[MonitoredSite]:
    """One ``MonitoredSite`` per row of ``status`` (``flow.sites.SiteMonitor.status``),
    sharing one cached answer."""
    import threading

    cache: dict[str, Any] = {"at": -1e18, "rows": []}
    lock = threading.Lock()

    def rows(now: float) -> list[dict[str, Any]]:
        with lock:
            if now - cache["at"] > ttl:
                cache["rows"], cache["at"] = status(now), now
            return list(cache["rows"])

    return [MonitoredSite(r["name"], r["executor"], rows) for r in rows(0.0)]


class SiteRegistry:
    def __init__(self, sites: Iterable[Site] = ()) -> None:
        self._sites: dict[str, Site] = {}
        for site in sites:
            self.register(site)

    def register(self, site: Site) -> None:
        self._sites[site.name] = site

    def names(self) -> list[str]:
        return list(self._sites)

    def get(self, name: str) -> Site:
        site = self._sites.get(name)
        if site is None:
            raise NotFound(
                f"no site {name!r}",
                hint=f"GET /api/v1/sites lists them: {', '.join(self._sites) or 'none'}",
                site=name,
            )
        return site


def load_outages(text: str, source: str = "outages") -> tuple[SiteOutage, ...]:
    """Outages from JSON: ``[{"site", "start", "end"?, "description"?, "notes"?}]``; times
    are Unix seconds or ISO 8601 (``2026-12-01T08:00:00+00:00``)."""
    import datetime as dt
    import json

    from hexflow.errors import SpecError

    def when(value: object, field: str) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value).timestamp()
            except ValueError:
                pass
        raise SpecError(
            f"{source}: {field}: expected Unix seconds or an ISO 8601 time, got {value!r}",
            field=field,
        )

    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise SpecError(f"{source}: expected a JSON list of outages")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("site"), str):
            raise SpecError(f"{source}: [{i}]: expected an object with a site", field="site")
        end = item.get("end")
        out.append(
            SiteOutage(
                site=item["site"],
                start=when(item.get("start"), f"[{i}].start"),
                end=None if end is None else when(end, f"[{i}].end"),
                description=str(item.get("description", "")),
                notes=str(item.get("notes", "")),
            )
        )
    return tuple(out)
