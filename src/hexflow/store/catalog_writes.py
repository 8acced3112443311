"""Writing catalog versions: one (``add_version``) or many in one transaction
(``add_versions_bulk``), with their files, metadata pairs, search text and the
``dataset.version_created`` event in the same transaction.

Versions are content-addressed (one row per distinct manifest digest of a dataset) and
immutable: a row is never updated after it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from hexflow.errors import StoreError
from hexflow.model.datasets import FileEntry, VersionRecord, meta_pairs
from hexflow.model.events import DATASET_VERSION_CREATED, NewEvent
from hexflow.store import events_sql
from hexflow.store.catalog_rows import select_versions, version_record
from hexflow.store.data_schema import (
    dataset_versions,
    datasets,
    version_files,
    version_meta,
)

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_V, _D = dataset_versions, datasets
_BULK = 2000  # versions per multi-row insert of add_versions_bulk
_FTS_INSERT = text("INSERT INTO catalog_fts (rowid, search_text) VALUES (:id, :t)")


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def version_event(v: VersionRecord) -> NewEvent:
    """The ``dataset.version_created`` event of a new version, logged in the transaction
    that creates it (so a version exists exactly when its event does)."""
    return NewEvent(
        DATASET_VERSION_CREATED,
        v.project,
        v.ref,
        v.created_at,
        {
            "dataset": v.name,
            "version": v.number,
            "ref": v.ref,
            "digest": v.digest,
            "pid": v.pid,
            "size": v.size,
            "files": v.files,
            "title": str(v.metadata.get("title") or v.name),
        },
    )


class CatalogWritesMixin:
    """The writing half of ``CatalogSql``."""

    _db: DataDb

    def add_version(
        self,
        *,
        project: str,
        name: str,
        entries: Sequence[FileEntry],
        digest: str,
        pid: str,
        metadata: dict[str, Any],
        search_text: str,
        now: float,
    ) -> tuple[VersionRecord, bool]:
        """Register a version; if the dataset already has this digest, return that one.

        Returns ``(version, created)``.
        """
        for attempt in (1, 2):  # a concurrent writer may win the race for the number
            try:
                with self._db.write() as conn:
                    return self._add(
                        conn, project, name, entries, digest, pid, metadata, search_text, now
                    )
            except StoreError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")

    def add_versions_bulk(self, rows: Iterable[dict[str, Any]], now: float) -> int:
        """Many versions in one transaction (imports, benchmarks); each row has the keys of
        ``add_version``. Versions already present are skipped. Returns
        how many were new. Rows go in with multi-row inserts, a few thousand at a time."""
        rows = list(rows)
        created = 0
        with self._db.write() as conn:
            for i in range(0, len(rows), _BULK):
                created += self._add_many(conn, rows[i : i + _BULK], now)
        return created

    def _add_many(self, conn: Connection, rows: list[dict[str, Any]], now: float) -> int:
        ids: dict[tuple[str, str], int] = {}
        wanted = {(r["project"], r["name"]) for r in rows}
        for project in {p for p, _ in wanted}:
            names = sorted(n for p, n in wanted if p == project)
            for chunk in _chunks(names):
                found = conn.execute(
                    select(_D.c.id, _D.c.name).where(_D.c.project == project, _D.c.name.in_(chunk))
                )
                ids.update(((project, r.name), r.id) for r in found)
        missing = sorted(wanted - ids.keys())
        if missing:
            new_ids = conn.execute(
                insert(_D).returning(_D.c.id, sort_by_parameter_order=True),
                [{"project": p, "name": n, "created_at": now} for p, n in missing],
            ).scalars()
            ids.update(zip(missing, new_ids, strict=True))
        have: set[tuple[int, str]] = set()
        top: dict[int, int] = {}
        for chunk in _chunks(sorted(set(ids.values()))):
            for r in conn.execute(
                select(_V.c.dataset_id, _V.c.digest, _V.c.number).where(_V.c.dataset_id.in_(chunk))
            ):
                have.add((r.dataset_id, r.digest))
                top[r.dataset_id] = max(top.get(r.dataset_id, 0), r.number)
        fresh: list[tuple[dict[str, Any], int]] = []
        for row in rows:
            ds_id = ids[(row["project"], row["name"])]
            if (ds_id, row["digest"]) in have:
                continue
            have.add((ds_id, row["digest"]))
            top[ds_id] = top.get(ds_id, 0) + 1
            fresh.append((row, top[ds_id]))
        if not fresh:
            return 0
        version_ids = conn.execute(
            insert(_V).returning(_V.c.id, sort_by_parameter_order=True),
            [
                {
                    "dataset_id": ids[(row["project"], row["name"])],
                    "number": number,
                    "digest": row["digest"],
                    "pid": row["pid"],
                    "created_at": now,
                    "size": sum(e.size for e in row["entries"]),
                    "files": len(row["entries"]),
                    "metadata": json.dumps(row["metadata"], sort_keys=True),
                    "search_text": row["search_text"],
                }
                for row, number in fresh
            ],
        ).scalars()
        files: list[dict[str, Any]] = []
        metas: list[dict[str, Any]] = []
        texts: list[dict[str, Any]] = []
        for (row, _), vid in zip(fresh, version_ids, strict=True):
            files.extend(
                {"version_id": vid, "path": e.path, "size": e.size, "hash": e.hash}
                for e in row["entries"]
            )
            metas.extend(
                {"version_id": vid, "key": k, "value": v}
                for k, v in sorted(meta_pairs(row["metadata"]))
            )
            texts.append({"id": vid, "t": row["search_text"]})
        if files:
            conn.execute(insert(version_files), files)
        if metas:
            conn.execute(insert(version_meta), metas)
        if self._db.dialect == "sqlite":
            conn.execute(_FTS_INSERT, texts)
        created = [
            version_event(
                VersionRecord(
                    project=row["project"],
                    name=row["name"],
                    number=number,
                    digest=row["digest"],
                    pid=row["pid"],
                    created_at=now,
                    size=sum(e.size for e in row["entries"]),
                    files=len(row["entries"]),
                    metadata=row["metadata"],
                )
            )
            for row, number in fresh
        ]
        events_sql.append(conn, created, numbers=False)
        return len(fresh)

    def _add(
        self,
        conn: Connection,
        project: str,
        name: str,
        entries: Sequence[FileEntry],
        digest: str,
        pid: str,
        metadata: dict[str, Any],
        search_text: str,
        now: float,
    ) -> tuple[VersionRecord, bool]:
        ds_id = conn.execute(
            select(_D.c.id).where(_D.c.project == project, _D.c.name == name)
        ).scalar()
        if ds_id is None:
            ds_id = conn.execute(
                insert(_D).values(project=project, name=name, created_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
        else:
            row = conn.execute(
                select_versions().where(_V.c.dataset_id == ds_id, _V.c.digest == digest)
            ).first()
            if row is not None:
                return version_record(row), False
        number = (
            conn.execute(select(func.max(_V.c.number)).where(_V.c.dataset_id == ds_id)).scalar()
            or 0
        ) + 1
        size = sum(e.size for e in entries)
        version_id = conn.execute(
            insert(_V).values(
                dataset_id=ds_id,
                number=number,
                digest=digest,
                pid=pid,
                created_at=now,
                size=size,
                files=len(entries),
                metadata=json.dumps(metadata, sort_keys=True),
                search_text=search_text,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        if entries:
            conn.execute(
                insert(version_files),
                [
                    {"version_id": version_id, "path": e.path, "size": e.size, "hash": e.hash}
                    for e in entries
                ],
            )
        pairs = [
            {"version_id": version_id, "key": k, "value": v}
            for k, v in sorted(meta_pairs(metadata))
        ]
        if pairs:
            conn.execute(insert(version_meta), pairs)
        if self._db.dialect == "sqlite":
            conn.execute(_FTS_INSERT, {"id": version_id, "t": search_text})
        record = VersionRecord(
            project=project,
            name=name,
            number=number,
            digest=digest,
            pid=pid,
            created_at=now,
            size=size,
            files=len(entries),
            metadata=metadata,
        )
        events_sql.append(conn, [version_event(record)], numbers=False)
        return record, True
