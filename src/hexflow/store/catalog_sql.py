"""SQL of the dataset catalog: datasets, versions (content-addressed: one row per distinct
manifest digest of a dataset), their files, replicas, provenance and search.

``CatalogSql`` is composed of one part per concept — writing versions
(``catalog_writes``), search (``catalog_search``), replicas (``catalog_replicas``) and
provenance (``catalog_lineage``) — and itself reads versions and datasets and keeps the
data audit log. Versions are immutable; replicas and read times change; provenance edges
are only added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select

from hexflow.errors import StoreError
from hexflow.model.datasets import FileEntry, VersionRecord
from hexflow.store.catalog_lineage import CatalogLineageMixin
from hexflow.store.catalog_replicas import CatalogReplicasMixin
from hexflow.store.catalog_rows import select_versions, version_id, version_record
from hexflow.store.catalog_search import CatalogSearchMixin
from hexflow.store.catalog_writes import CatalogWritesMixin
from hexflow.store.data_schema import dataset_versions, datasets, version_files

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_V, _D = dataset_versions, datasets


class CatalogSql(CatalogWritesMixin, CatalogSearchMixin, CatalogReplicasMixin, CatalogLineageMixin):
    def __init__(self, db: DataDb) -> None:
        self._db = db

    # ------------------------------------------------------------ reading versions

    def get_version(self, project: str, name: str, selector: str | None) -> VersionRecord | None:
        """``selector``: None (the latest), a number, or a digest (prefix, with or without
        the ``algo:`` part)."""
        query = select_versions().where(_D.c.project == project, _D.c.name == name)
        with self._db.read() as conn:
            if selector is None or selector == "latest":
                row = conn.execute(query.order_by(_V.c.number.desc()).limit(1)).first()
            elif selector.isdigit():
                row = conn.execute(query.where(_V.c.number == int(selector))).first()
            else:
                pattern = selector if ":" in selector else f"%:{selector}"
                rows = conn.execute(query.where(_V.c.digest.like(pattern + "%")).limit(2)).all()
                if len(rows) > 1:
                    raise StoreError(f"version {name}@{selector} is ambiguous")
                row = rows[0] if rows else None
        return version_record(row) if row is not None else None

    def get_by_pid(self, pid: str) -> VersionRecord | None:
        with self._db.read() as conn:
            row = conn.execute(select_versions().where(_V.c.pid == pid)).first()
        return version_record(row) if row is not None else None

    def list_datasets(self, project: str | None) -> list[dict[str, Any]]:
        latest = (
            select(
                _V.c.dataset_id,
                func.max(_V.c.number).label("latest"),
                func.count().label("versions"),
            )
            .group_by(_V.c.dataset_id)
            .subquery()
        )
        query = (
            select(_D.c.project, _D.c.name, _D.c.created_at, latest.c.latest, latest.c.versions)
            .select_from(_D.join(latest, latest.c.dataset_id == _D.c.id))
            .order_by(_D.c.project, _D.c.name)
        )
        if project is not None:
            query = query.where(_D.c.project == project)
        with self._db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def list_versions(self, project: str, name: str) -> list[VersionRecord]:
        query = (
            select_versions()
            .where(_D.c.project == project, _D.c.name == name)
            .order_by(_V.c.number)
        )
        with self._db.read() as conn:
            return [version_record(r) for r in conn.execute(query)]

    def files(self, v: VersionRecord) -> list[FileEntry]:
        with self._db.read() as conn:
            vid = version_id(conn, v)
            rows = conn.execute(
                select(version_files.c.path, version_files.c.size, version_files.c.hash)
                .where(version_files.c.version_id == vid)
                .order_by(version_files.c.path)
            )
            return [FileEntry(r.path, r.size, r.hash) for r in rows]

    # ------------------------------------------------------------ audit

    def audit(
        self,
        *,
        actor: str,
        project: str,
        action: str,
        target: str,
        outcome: str,
        detail: str,
        now: float,
    ) -> None:
        """One line in the service's audit log (lifecycle actions, data deletions)."""
        from hexflow.store.service_schema import audit_log

        with self._db.write() as conn:
            conn.execute(
                insert(audit_log).values(
                    at=now,
                    actor=actor,
                    project=project,
                    action=action,
                    target=target[:256],
                    outcome=outcome,
                    detail=detail,
                )
            )

    def audit_entries(self, project: str, limit: int = 100) -> list[dict[str, Any]]:
        from hexflow.store.service_schema import audit_log

        with self._db.read() as conn:
            rows = conn.execute(
                select(audit_log)
                .where(audit_log.c.project == project, audit_log.c.action.startswith("data."))
                .order_by(audit_log.c.id.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]
