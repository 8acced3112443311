"""Version rows of the catalog: the columns that make a ``VersionRecord``, the query that
selects them (a version joined with its dataset) and the lookup of a version's row id.

Shared by every part of ``CatalogSql``; it holds no state and writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from hexflow.errors import StoreError
from hexflow.model.datasets import VersionRecord
from hexflow.store.data_schema import dataset_versions, datasets

_V, _D = dataset_versions, datasets
VERSION_COLUMNS = (
    _V.c.id,
    _D.c.project,
    _D.c.name,
    _V.c.number,
    _V.c.digest,
    _V.c.pid,
    _V.c.created_at,
    _V.c.size,
    _V.c.files,
    _V.c.metadata,
)


def version_record(row: Any) -> VersionRecord:
    """The version of a row holding ``VERSION_COLUMNS``."""
    return VersionRecord(
        project=row.project,
        name=row.name,
        number=row.number,
        digest=row.digest,
        pid=row.pid,
        created_at=row.created_at,
        size=row.size,
        files=row.files,
        metadata=json.loads(row.metadata),
    )


def select_versions() -> Any:
    return select(*VERSION_COLUMNS).select_from(_V.join(_D, _V.c.dataset_id == _D.c.id))


def version_id(conn: Connection, v: VersionRecord) -> int:
    """The row id of ``v``; a ``StoreError`` when the catalog does not hold it."""
    vid = conn.execute(
        select(_V.c.id)
        .select_from(_V.join(_D, _V.c.dataset_id == _D.c.id))
        .where(_D.c.project == v.project, _D.c.name == v.name, _V.c.number == v.number)
    ).scalar()
    if vid is None:
        raise StoreError(f"version {v.ref} of project {v.project} is not in the catalog")
    return int(vid)
