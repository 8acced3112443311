"""SFAPI's status, meta and account answers, built from hexflow's sites and accounts.

Machines are SFAPI's names for sites (``ServiceConfig.sfapi_machines``). Users, projects and
roles map to SFAPI's users, projects ("repos") and roles (groups: ``sfapi.groups``). SFAPI
wants integer ids (uid, gid, project id): they are a stable hash of the name, the same on
every server.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping
from typing import Any

import hexflow
from hexflow.errors import NotFound
from hexflow.model.access import Scope
from hexflow.service.auth import Principal
from hexflow.service.sites import SiteOutage, SiteRegistry, SiteStatus
from hexflow.store.service_db import ServiceDb

CHANGELOG = [
    {"date": "2026-11-26", "change": "hexflow: SFAPI v1.2 facade over hexflow runs (docs/sfapi.md)"}
]


def number(name: str) -> int:
    """A stable positive id for a name (uid, gid, project id)."""
    return 10_000 + zlib.crc32(name.encode()) % 2_000_000_000


def _iso(at: float | None) -> str | None:
    return None if at is None else dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


class StatusViews:
    def __init__(self, sites: SiteRegistry, machines: Mapping[str, str]) -> None:
        self._sites = sites
        self._machines = dict(machines)

    def _status(self, machine: str, now: float) -> SiteStatus:
        site = self._machines.get(machine)
        if site is None:
            raise NotFound(
                f"no resource {machine!r}",
                hint=f"resources here: {', '.join(self._machines)}",
                resource=machine,
            )
        return self._sites.get(site).status(now)

    def status(self, machine: str, now: float) -> dict[str, Any]:
        st = self._status(machine, now)
        return {
            "name": machine,
            "full_name": f"{machine} (hexflow site {st.name})",
            "description": st.description,
            "system_type": "compute",
            "status": st.state,
            "notes": [o.description for o in st.outages if o.status(now) == "Active"],
            "updated_at": _iso(now),
        }

    def statuses(self, now: float) -> list[dict[str, Any]]:
        return [self.status(m, now) for m in self._machines]

    def outages(self, machine: str, now: float, *, planned: bool) -> list[dict[str, Any]]:
        found = self._status(machine, now).outages
        return [_outage(machine, o, now) for o in found if (o.status(now) == "Planned") == planned]

    def all_outages(self, now: float, *, planned: bool) -> list[list[dict[str, Any]]]:
        return [self.outages(m, now, planned=planned) for m in self._machines]

    def notes(self, machine: str, now: float) -> list[dict[str, Any]]:
        return [
            {"name": machine, "notes": o.notes or o.description, "active": True,
             "timestamp": _iso(o.start)}
            for o in self._status(machine, now).outages
            if o.status(now) == "Active"
        ]  # fmt: skip

    def all_notes(self, now: float) -> list[list[dict[str, Any]]]:
        return [self.notes(m, now) for m in self._machines]

    def config(self) -> list[dict[str, str | None]]:
        return [
            {"key": "compute.targets", "value": ",".join(self._machines)},
            {"key": "hexflow.version", "value": hexflow.__version__},
            {"key": "hexflow.sites", "value": ",".join(sorted(set(self._machines.values())))},
        ]


def _outage(machine: str, o: SiteOutage, now: float) -> dict[str, Any]:
    out = {
        "name": machine,
        "start_at": _iso(o.start),
        "description": o.description,
        "notes": o.notes,
        "status": o.status(now),
    }
    if o.end is not None:
        out["end_at"] = _iso(o.end)
    return out


class AccountViews:
    def __init__(self, db: ServiceDb) -> None:
        self._db = db

    def user(self, who: Principal, username: str | None) -> dict[str, Any]:
        who.require_scope(Scope.READ)
        name = username or who.name
        if name != who.name:
            shared = set(self._db.accounts.roles_of(name)) & set(who.roles)
            if not shared or self._db.accounts.get_user(name) is None:
                raise NotFound(
                    f"no user {name!r}",
                    hint="you can look up only the members of your projects",
                    user=name,
                )
        return {"uid": number(name), "name": name}

    def projects(self, who: Principal) -> list[dict[str, Any]]:
        who.require_scope(Scope.READ)
        out = []
        for name, role in sorted(who.roles.items()):
            project = self._db.accounts.get_project(name)
            out.append(
                {
                    "id": number(name),
                    "description": (project.description if project else "") or name,
                    "repo_name": name,
                    "iris_role": role.value,
                }
            )
        return out

    def roles(self, who: Principal) -> list[dict[str, Any]]:
        who.require_scope(Scope.READ)
        return [
            {"id": number(p), "description": f"{r.value} of {p}", "repo_name": p,
             "iris_role": r.value}
            for p, r in sorted(who.roles.items())
        ]  # fmt: skip

    def clients(self, who: Principal) -> list[dict[str, Any]]:
        who.require_scope(Scope.READ)
        return [
            {
                "name": c.name or c.client_id,
                "clientId": c.client_id,
                "expiresAt": _iso(c.expires_at) or "never",
                "comments": f"scopes: {' '.join(sorted(s.value for s in c.scopes))}",
            }
            for c in self._db.accounts.list_clients(who.name)
            if c.revoked_at is None
        ]
