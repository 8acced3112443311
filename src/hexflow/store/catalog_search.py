"""Catalog search: versions by full text, name and metadata, in a few index walks.

Full text goes through FTS5 on SQLite and ``to_tsvector`` on PostgreSQL (migration 0006);
every filter value is a bound parameter. ``_SearchSql`` picks, per search, which index
drives the walk so that ``limit`` stops it early.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from hexflow.errors import StoreError
from hexflow.model.datasets import META_KEY_MAX, META_VALUE_MAX, VersionRecord
from hexflow.store.catalog_rows import version_record
from hexflow.store.data_schema import FTS_CONFIG

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_COLUMNS = (
    "v.id, d.project, d.name, v.number, v.digest, v.pid, v.created_at, v.size, v.files, v.metadata"
)


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


class CatalogSearchMixin:
    """``CatalogSql.search``."""

    _db: DataDb

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
            return [version_record(r) for r in query.run(conn, limit)]
