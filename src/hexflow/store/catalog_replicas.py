"""Replicas of catalog versions: where (site, tier, location) a version's files are
kept, and when they were last read. A replica row is added, moved or removed; recording
the same replica twice, even from two writers at once, leaves one row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from hexflow.errors import StoreError
from hexflow.model.datasets import Replica, VersionRecord
from hexflow.store.catalog_rows import VERSION_COLUMNS, version_id, version_record
from hexflow.store.data_schema import dataset_versions, datasets, replicas

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_V, _D = dataset_versions, datasets


class CatalogReplicasMixin:
    """The replica methods of ``CatalogSql``."""

    _db: DataDb

    def add_replica(
        self, v: VersionRecord, site: str, tier: str, location: str, now: float
    ) -> None:
        """Record (or move) the replica of ``v`` on ``tier``; idempotent, also when two
        writers record the same replica at once."""
        try:
            self._add_replica(v, site, tier, location, now)
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            self._add_replica(v, site, tier, location, now)  # the other writer's row is there

    def _add_replica(
        self, v: VersionRecord, site: str, tier: str, location: str, now: float
    ) -> None:
        with self._db.write() as conn:
            vid = version_id(conn, v)
            found = conn.execute(
                select(replicas.c.version_id).where(
                    replicas.c.version_id == vid, replicas.c.site == site, replicas.c.tier == tier
                )
            ).first()
            if found is None:
                conn.execute(
                    insert(replicas).values(
                        version_id=vid, site=site, tier=tier, location=location, created_at=now
                    )
                )
            else:
                conn.execute(
                    update(replicas)
                    .where(
                        replicas.c.version_id == vid,
                        replicas.c.site == site,
                        replicas.c.tier == tier,
                    )
                    .values(location=location)
                )

    def remove_replica(self, v: VersionRecord, site: str, tier: str) -> None:
        with self._db.write() as conn:
            vid = version_id(conn, v)
            conn.execute(
                delete(replicas).where(
                    replicas.c.version_id == vid, replicas.c.site == site, replicas.c.tier == tier
                )
            )

    def touch_read(self, v: VersionRecord, site: str, tier: str, now: float) -> None:
        with self._db.write() as conn:
            vid = version_id(conn, v)
            conn.execute(
                update(replicas)
                .where(
                    replicas.c.version_id == vid, replicas.c.site == site, replicas.c.tier == tier
                )
                .values(last_read_at=now)
            )

    def replicas(
        self, project: str | None = None, v: VersionRecord | None = None
    ) -> list[tuple[VersionRecord, Replica]]:
        query = (
            select(
                *VERSION_COLUMNS,
                replicas.c.site,
                replicas.c.tier,
                replicas.c.location,
                replicas.c.created_at.label("r_created"),
                replicas.c.last_read_at,
            )
            .select_from(
                replicas.join(_V, replicas.c.version_id == _V.c.id).join(
                    _D, _V.c.dataset_id == _D.c.id
                )
            )
            .order_by(_D.c.project, _D.c.name, _V.c.number, replicas.c.tier)
        )
        if project is not None:
            query = query.where(_D.c.project == project)
        if v is not None:
            query = query.where(
                _D.c.project == v.project, _D.c.name == v.name, _V.c.number == v.number
            )
        with self._db.read() as conn:
            out = []
            for row in conn.execute(query):
                version = version_record(row)
                out.append(
                    (
                        version,
                        Replica(
                            ref=version.ref,
                            site=row.site,
                            tier=row.tier,
                            location=row.location,
                            created_at=row.r_created,
                            last_read_at=row.last_read_at,
                        ),
                    )
                )
            return out
