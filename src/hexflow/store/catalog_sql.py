"""SQL of the dataset catalog: datasets, versions (content-addressed: one row per distinct
manifest digest of a dataset), their files, replicas, provenance and search.

A version row is never updated after it is written, except nothing: versions are immutable.
Replicas and read times change; provenance edges are only added. Full-text search goes
through FTS5 on SQLite and ``to_tsvector`` on PostgreSQL (migration 0006).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from hexflow.errors import StoreError
from hexflow.model.datasets import (
    META_KEY_MAX,
    META_VALUE_MAX,
    FileEntry,
    LineageEdge,
    Replica,
    VersionRecord,
    meta_pairs,
)
from hexflow.model.events import DATASET_VERSION_CREATED, NewEvent
from hexflow.store import events_sql
from hexflow.store.data_schema import (
    FTS_CONFIG,
    activities,
    activity_io,
    dataset_versions,
    datasets,
    replicas,
    version_files,
    version_meta,
)

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_V, _D = dataset_versions, datasets
_VERSION_COLUMNS = (
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


def _version(row: Any) -> VersionRecord:
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


def _select_versions() -> Any:
    return select(*_VERSION_COLUMNS).select_from(_V.join(_D, _V.c.dataset_id == _D.c.id))


_BULK = 2000  # versions per multi-row insert of add_versions_bulk
_FTS_INSERT = text("INSERT INTO catalog_fts (rowid, search_text) VALUES (:id, :t)")
_COLUMNS = (
    "v.id, d.project, d.name, v.number, v.digest, v.pid, v.created_at, v.size, v.files, v.metadata"
)


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _name_pattern(name: str) -> str:
    """``ocean`` → names containing "ocean"; ``ocean-*`` → a glob. LIKE's own wildcards
    in the name are escaped (``sea_ice`` means just that)."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%") if "*" in name else f"%{escaped}%"


class _SearchSql:
    """The SQL of one search, built from its filters (values go in as bound parameters).

    SQLite: one filter drives the search — its index is walked newest first and LIMIT
    stops the walk — and the others are checked on each candidate. The driver is the
    filter with the fewest matches (counted on its index, up to ``_CAP``), so the walk is
    never longer than the rarest filter's matches. Without an indexed filter (a name, a
    project) the newest versions are tried first, then the datasets that pass.
    PostgreSQL's planner makes these choices itself, from its statistics.
    """

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.conditions: list[str] = []  # always checked on each candidate
        self.params: dict[str, Any] = {}
        self.indexed: list[tuple[str, str]] = []  # metadata filters the index answers
        self.name: str | None = None  # LIKE pattern
        self.match: str | None = None  # SQLite FTS5 query
        self.words: str | None = None  # PostgreSQL plain text
        self.order = "newest"

    def where(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def meta(self, key: str, value: str) -> None:
        path = [p for p in key.split(".") if p]
        if not path or not all(re.fullmatch(r"[\w-]+", p) for p in path):
            raise StoreError(f"metadata key {key!r} is not a dotted path of names")
        dotted = ".".join(path)
        if len(dotted) <= META_KEY_MAX and len(value) <= META_VALUE_MAX:
            self.indexed.append((dotted, value))
            return
        # too long for the index: compared with the JSON itself, on the candidates only
        i = len(self.conditions)
        if self.dialect == "sqlite":
            self.where(
                f"(json_extract(v.metadata, :jp{i}) = :jv{i} OR EXISTS (SELECT 1 FROM "
                f"json_each(v.metadata, :jp{i}) AS e WHERE e.value = :jv{i}))",
                **{f"jp{i}": "$." + ".".join(f'"{p}"' for p in path), f"jv{i}": value},
            )
        else:
            self.where(
                f"(CAST(v.metadata AS JSONB) #>> CAST(:jp{i} AS text[]) = :jv{i} OR "
                f"CAST(v.metadata AS JSONB) #> CAST(:jp{i} AS text[]) @> "
                f"to_jsonb(CAST(:jv{i} AS text)))",
                **{f"jp{i}": path, f"jv{i}": value},
            )

    def text(self, words: str, order: str) -> bool:
        """Add the full-text condition; False when the words hold nothing to search for."""
        self.order = order
        if self.dialect == "sqlite":
            self.match = fts_query(words)
            return bool(self.match)
        self.words = words
        return True

    def run(self, conn: Connection, limit: int) -> Sequence[Any]:
        params = {**self.params, "limit": limit}
        for j, (key, value) in enumerate(self.indexed):
            params[f"km{j}"], params[f"vm{j}"] = key, value
        if self.name is not None:
            params["name"] = self.name
        if self.dialect != "sqlite":
            return conn.execute(text(self._postgres(params)), params).all()
        if self.match is not None:
            params["match"] = self.match
        driver = self._driver(conn, params)
        if driver is None:
            return []  # a filter without any match
        if driver == "versions":
            # no index to walk: look at the newest versions first; if too few of them pass
            # (a rare name, a small project), go through the datasets that pass instead
            params["window"] = _WINDOW
            found = conn.execute(text(self._sqlite(driver, _WINDOW)), params).all()
            if len(found) == limit:
                return found
        return conn.execute(text(self._sqlite(driver)), params).all()

    def _driver(self, conn: Connection, params: dict[str, Any]) -> str | None:
        """The filter whose index to walk: the one with the fewest matches (counted only
        when there is a choice); None when a filter has no match at all."""
        counts: dict[str, int] = {}
        choice = len(self.indexed) + (self.match is not None) + (self.name is not None) > 1
        if self.match is not None and (choice or self.order == "relevance"):
            counts["text"] = conn.execute(_FTS_COUNT, {**params, "cap": _CAP}).scalar_one()
        if self.order == "relevance":
            return "text" if counts["text"] else None  # ranking needs every match anyway
        if self.match is not None and not choice:
            return "text"
        for j in range(len(self.indexed)):
            counts[f"m{j}"] = (
                conn.execute(
                    _META_COUNT, {"k": params[f"km{j}"], "v": params[f"vm{j}"], "cap": _CAP}
                ).scalar_one()
                if choice
                else 1
            )
        if counts and min(counts.values()) == 0:
            return None
        if counts:
            driver = min(counts, key=lambda k: counts[k])
            if counts[driver] < _CAP or self.name is None:
                return driver
        return "versions"

    def _sqlite(self, driver: str, window: int | None = None) -> str:
        # CROSS JOIN keeps the tables in the order written: the first one drives.
        conditions = list(self.conditions)  # the cheapest checks first
        if self.name is not None:
            conditions.append("d.name LIKE :name ESCAPE '\\'")
        for j in range(len(self.indexed)):
            if driver != f"m{j}":
                conditions.append(_meta_exists(j))
        if self.match is not None and driver != "text":
            # the matches' ids once (one pass over the word's list), then a lookup each;
            # a correlated MATCH per candidate costs far more than that pass
            conditions.append(
                "v.id IN (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH :match)"
            )
        where = "".join(f" AND {c}" for c in conditions)
        order = "v.id DESC"
        if driver == "text":
            order = "f.rank, f.rowid DESC" if self.order == "relevance" else "f.rowid DESC"
            tables = "catalog_fts f CROSS JOIN dataset_versions v CROSS JOIN datasets d"
            join = "catalog_fts MATCH :match AND v.id = f.rowid AND d.id = v.dataset_id"
        elif driver.startswith("m"):
            m = driver
            order = f"{m}.version_id DESC"
            tables = f"version_meta {m} CROSS JOIN dataset_versions v CROSS JOIN datasets d"
            join = (
                f"{m}.key = :k{m} AND {m}.value = :v{m} AND v.id = {m}.version_id "
                "AND d.id = v.dataset_id"
            )
        elif window is not None:  # the newest versions only
            tables = (
                "(SELECT id FROM dataset_versions ORDER BY id DESC LIMIT :window) w "
                "CROSS JOIN dataset_versions v CROSS JOIN datasets d"
            )
            join = "v.id = w.id AND d.id = v.dataset_id"
        else:  # the datasets that pass, then their versions (sorted)
            tables = "datasets d CROSS JOIN dataset_versions v"
            join = "v.dataset_id = d.id"
        return f"SELECT {_COLUMNS} FROM {tables} WHERE {join}{where} ORDER BY {order} LIMIT :limit"

    def _postgres(self, params: dict[str, Any]) -> str:
        conditions = list(self.conditions)
        conditions.extend(_meta_exists(j) for j in range(len(self.indexed)))
        if self.name is not None:
            conditions.append("d.name ILIKE :name ESCAPE '\\'")
        order = "v.id DESC"
        if self.words is not None:
            params["words"], params["cfg"] = self.words, FTS_CONFIG
            conditions.append("v.search_vector @@ plainto_tsquery(:cfg, :words)")
            if self.order == "relevance":
                order = "ts_rank(v.search_vector, plainto_tsquery(:cfg, :words)) DESC, " + order
        where = "".join(f" AND {c}" for c in conditions)
        return (
            f"SELECT {_COLUMNS} FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
            f"WHERE TRUE{where} ORDER BY {order} LIMIT :limit"
        )


def _meta_exists(j: int) -> str:
    return (
        f"EXISTS (SELECT 1 FROM version_meta m{j} WHERE m{j}.version_id = v.id "
        f"AND m{j}.key = :km{j} AND m{j}.value = :vm{j})"
    )


_CAP = 20_000  # matches counted per filter to choose the driver, at most
_WINDOW = 2_000  # newest versions looked at first when no filter has an index
_FTS_COUNT = text(
    "SELECT count(*) FROM (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH :match LIMIT :cap)"
)
_META_COUNT = text(
    "SELECT count(*) FROM (SELECT 1 FROM version_meta WHERE key = :k AND value = :v LIMIT :cap)"
)


def fts_query(words: str) -> str:
    """User text → an FTS5 query: every word must match (quoted, so no syntax errors);
    a trailing ``*`` on a word keeps prefix matching."""
    terms = []
    for word in re.findall(r"[\w*]+", words):
        prefix = word.endswith("*")
        core = word.strip("*")
        if core:
            terms.append(f'"{core}"' + ("*" if prefix else ""))
    return " ".join(terms)


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


class CatalogSql:
    def __init__(self, db: DataDb) -> None:
        self._db = db

    # ------------------------------------------------------------ writing versions

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
                _select_versions().where(_V.c.dataset_id == ds_id, _V.c.digest == digest)
            ).first()
            if row is not None:
                return _version(row), False
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

    # ------------------------------------------------------------ reading versions

    def _version_id(self, conn: Connection, v: VersionRecord) -> int:
        vid = conn.execute(
            select(_V.c.id)
            .select_from(_V.join(_D, _V.c.dataset_id == _D.c.id))
            .where(_D.c.project == v.project, _D.c.name == v.name, _V.c.number == v.number)
        ).scalar()
        if vid is None:
            raise StoreError(f"version {v.ref} of project {v.project} is not in the catalog")
        return int(vid)

    def get_version(self, project: str, name: str, selector: str | None) -> VersionRecord | None:
        """``selector``: None (the latest), a number, or a digest (prefix, with or without
        the ``algo:`` part)."""
        query = _select_versions().where(_D.c.project == project, _D.c.name == name)
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
        return _version(row) if row is not None else None

    def get_by_pid(self, pid: str) -> VersionRecord | None:
        with self._db.read() as conn:
            row = conn.execute(_select_versions().where(_V.c.pid == pid)).first()
        return _version(row) if row is not None else None

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
            _select_versions()
            .where(_D.c.project == project, _D.c.name == name)
            .order_by(_V.c.number)
        )
        with self._db.read() as conn:
            return [_version(r) for r in conn.execute(query)]

    def files(self, v: VersionRecord) -> list[FileEntry]:
        with self._db.read() as conn:
            vid = self._version_id(conn, v)
            rows = conn.execute(
                select(version_files.c.path, version_files.c.size, version_files.c.hash)
                .where(version_files.c.version_id == vid)
                .order_by(version_files.c.path)
            )
            return [FileEntry(r.path, r.size, r.hash) for r in rows]

    # ------------------------------------------------------------ search

    def search(
        self,
        *,
        project: str | None = None,
        words: str | None = None,
        name: str | None = None,
        meta: dict[str, str] | None = None,
        limit: int = 50,
        order: str = "newest",
    ) -> list[VersionRecord]:
        """Versions matching every filter given, newest first (``order="relevance"``: best
        full-text matches first, which ranks every match: slower on large catalogs).

        The SQL touches few rows: one filter's index is walked newest first until ``limit``
        versions pass the others (``_SearchSql``).
        """
        if order not in ("newest", "relevance"):
            raise StoreError(f"search order must be newest or relevance, not {order!r}")
        query = _SearchSql(self._db.dialect)
        if project is not None:
            query.where("d.project = :project", project=project)
        if name:
            query.name = _name_pattern(name)
        for key, value in (meta or {}).items():
            query.meta(key, value)
        if words and words.strip():
            if not query.text(words, order):
                return []
        elif order == "relevance":
            raise StoreError("ordering by relevance needs words to search for")
        with self._db.read() as conn:
            return [_version(r) for r in query.run(conn, limit)]

    # ------------------------------------------------------------ replicas

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
            vid = self._version_id(conn, v)
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
            vid = self._version_id(conn, v)
            conn.execute(
                delete(replicas).where(
                    replicas.c.version_id == vid, replicas.c.site == site, replicas.c.tier == tier
                )
            )

    def touch_read(self, v: VersionRecord, site: str, tier: str, now: float) -> None:
        with self._db.write() as conn:
            vid = self._version_id(conn, v)
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
                *_VERSION_COLUMNS,
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
                version = _version(row)
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

    # ------------------------------------------------------------ provenance

    def record_activity(
        self,
        run_id: str,
        task_id: str,
        used: Sequence[VersionRecord],
        generated: Sequence[VersionRecord],
        now: float,
    ) -> None:
        with self._db.write() as conn:
            act = conn.execute(
                select(activities.c.id).where(
                    activities.c.run_id == run_id, activities.c.task_id == task_id
                )
            ).scalar()
            if act is None:
                act = conn.execute(
                    insert(activities).values(run_id=run_id, task_id=task_id, created_at=now)
                ).inserted_primary_key[0]  # type: ignore[index]
            have = {
                (r.version_id, r.role)
                for r in conn.execute(
                    select(activity_io.c.version_id, activity_io.c.role).where(
                        activity_io.c.activity_id == act
                    )
                )
            }
            rows = []
            for role, versions in (("used", used), ("generated", generated)):
                for v in versions:
                    key = (self._version_id(conn, v), role)
                    if key not in have:
                        have.add(key)
                        rows.append({"activity_id": act, "version_id": key[0], "role": role})
            if rows:
                conn.execute(insert(activity_io), rows)

    def run_activities(
        self, run_id: str
    ) -> list[tuple[str, list[VersionRecord], list[VersionRecord]]]:
        """(task id, versions used, versions generated) of every task of the run that the
        catalog knows of, in the order they were recorded."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(activities.c.id, activities.c.task_id, activity_io.c.role, *_VERSION_COLUMNS)
                .select_from(
                    activities.join(activity_io, activity_io.c.activity_id == activities.c.id)
                    .join(_V, _V.c.id == activity_io.c.version_id)
                    .join(_D, _D.c.id == _V.c.dataset_id)
                )
                .where(activities.c.run_id == run_id)
                .order_by(activities.c.id, _D.c.name, _V.c.number)
            ).all()
        out: dict[int, tuple[str, list[VersionRecord], list[VersionRecord]]] = {}
        for r in rows:
            entry = out.setdefault(r[0], (r.task_id, [], []))
            (entry[1] if r.role == "used" else entry[2]).append(_version(r))
        return list(out.values())

    def producers(self, v: VersionRecord) -> list[tuple[str, str]]:
        """The (run id, task id) of the activities that generated ``v``."""
        with self._db.read() as conn:
            vid = self._version_id(conn, v)
            rows = conn.execute(
                select(activities.c.run_id, activities.c.task_id)
                .select_from(activity_io.join(activities))
                .where(activity_io.c.version_id == vid, activity_io.c.role == "generated")
            )
            return [(r.run_id, r.task_id) for r in rows]

    def lineage(self, v: VersionRecord, direction: str, depth: int) -> list[LineageEdge]:
        """Edges upstream (what ``v`` was made from) or downstream (what was made from it),
        level by level up to ``depth`` activities away."""
        if direction not in ("upstream", "downstream"):
            raise StoreError(f"lineage direction must be upstream or downstream: {direction}")
        start_role, next_role = (
            ("generated", "used") if direction == "upstream" else ("used", "generated")
        )
        edges: list[LineageEdge] = []
        with self._db.read() as conn:
            frontier = {self._version_id(conn, v)}
            seen_versions = set(frontier)
            seen_acts: set[int] = set()
            refs: dict[int, str] = {}
            for level in range(1, depth + 1):
                if not frontier:
                    break
                acts = {
                    r.activity_id
                    for r in conn.execute(
                        select(activity_io.c.activity_id).where(
                            activity_io.c.version_id.in_(frontier),
                            activity_io.c.role == start_role,
                        )
                    )
                } - seen_acts
                seen_acts |= acts
                if not acts:
                    break
                io_rows = conn.execute(
                    select(
                        activity_io.c.activity_id,
                        activity_io.c.version_id,
                        activity_io.c.role,
                        activities.c.run_id,
                        activities.c.task_id,
                    )
                    .select_from(activity_io.join(activities))
                    .where(activity_io.c.activity_id.in_(acts))
                ).all()
                self._load_refs(conn, {r.version_id for r in io_rows} - set(refs), refs)
                by_act: dict[int, dict[str, list[int]]] = {}
                meta: dict[int, tuple[str, str]] = {}
                for r in io_rows:
                    by_act.setdefault(r.activity_id, {"used": [], "generated": []})[r.role].append(
                        r.version_id
                    )
                    meta[r.activity_id] = (r.run_id, r.task_id)
                nxt: set[int] = set()
                for act_id in sorted(by_act):
                    run_id, task_id = meta[act_id]
                    used, generated = by_act[act_id]["used"], by_act[act_id]["generated"]
                    # only the edges through the versions being followed from
                    if direction == "downstream":
                        used = [u for u in used if u in frontier]
                    else:
                        generated = [g for g in generated if g in frontier]
                    ins: list[int | None] = [*sorted(used)] or [None]
                    outs: list[int | None] = [*sorted(generated)] or [None]
                    for i in ins:
                        for o in outs:
                            edges.append(
                                LineageEdge(
                                    run_id,
                                    task_id,
                                    refs.get(i) if i is not None else None,
                                    refs.get(o) if o is not None else None,
                                    level,
                                )
                            )
                    nxt.update(by_act[act_id][next_role])
                frontier = nxt - seen_versions
                seen_versions |= frontier
        return edges

    @staticmethod
    def _load_refs(conn: Connection, ids: set[int], refs: dict[int, str]) -> None:
        if not ids:
            return
        rows = conn.execute(
            select(_V.c.id, _D.c.name, _V.c.number)
            .select_from(_V.join(_D, _V.c.dataset_id == _D.c.id))
            .where(_V.c.id.in_(ids))
        )
        for r in rows:
            refs[r.id] = f"{r.name}@{r.number}"
