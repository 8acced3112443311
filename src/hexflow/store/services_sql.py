"""The ``container_services`` table (migration 0011): one row per long-lived service
container, keyed by (project, name). The spec is JSON; ``state``, ``restarts``, ``health``
and ``message`` are what the supervisor saw last. Rows are written only by
``hexflow.service.containers``; a row exists exactly while hexflow owns the container.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import delete, insert, select, update

from hexflow.store.service_db import ServiceDb
from hexflow.store.services_schema import container_services


@dataclass(frozen=True, slots=True)
class ServiceRow:
    project: str
    name: str
    container: str
    image: str
    host_port: int
    spec: dict[str, Any]
    state: str
    health: str
    restarts: int
    message: str
    user_name: str
    created_at: float
    updated_at: float


def _row(r: Any) -> ServiceRow:
    return ServiceRow(
        r.project,
        r.name,
        r.container,
        r.image,
        r.host_port,
        json.loads(r.spec),
        r.state,
        r.health,
        r.restarts,
        r.message,
        r.user_name,
        r.created_at,
        r.updated_at,
    )


class ServiceRows:
    def __init__(self, db: ServiceDb) -> None:
        self._db = db

    def add(self, row: ServiceRow) -> None:
        """Conflict when the project has a service of that name or the port is taken."""
        values = {f.name: getattr(row, f.name) for f in fields(row)}
        values["spec"] = json.dumps(row.spec, sort_keys=True)
        with self._db.write(
            conflict=f"a service {row.name!r} or one on port {row.host_port} exists already"
        ) as conn:
            conn.execute(insert(container_services).values(**values))

    def get(self, project: str, name: str) -> ServiceRow | None:
        t = container_services
        with self._db.read() as conn:
            r = conn.execute(select(t).where(t.c.project == project, t.c.name == name)).first()
        return None if r is None else _row(r)

    def list(self, projects: Collection[str] | None = None) -> list[ServiceRow]:
        t = container_services
        query = select(t).order_by(t.c.project, t.c.name)
        if projects is not None:
            query = query.where(t.c.project.in_(list(projects)))
        with self._db.read() as conn:
            return [_row(r) for r in conn.execute(query)]

    def update(self, project: str, name: str, **values: Any) -> None:
        t = container_services
        with self._db.write() as conn:
            conn.execute(update(t).where(t.c.project == project, t.c.name == name).values(**values))

    def remove(self, project: str, name: str) -> None:
        t = container_services
        with self._db.write() as conn:
            conn.execute(delete(t).where(t.c.project == project, t.c.name == name))
