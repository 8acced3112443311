"""Tables of the data lifecycle: the dataset catalog (datasets, immutable versions, their
files and replicas, provenance activities) and transfers with their items.

They live on the store's one ``metadata`` (``schema.py`` imports this module). Full-text
search is not a table here: the migrations add an FTS5 table (``catalog_fts``) on SQLite,
and a stored ``search_vector`` column with a GIN index on PostgreSQL (see ``FTS_TABLE``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hexflow.store.schema import metadata

FTS_TABLE = "catalog_fts"  # SQLite FTS5 table (and its shadow tables), rowid = version id
PG_FTS_INDEX = "ix_catalog_search"  # PostgreSQL GIN index on the column below (0009)
PG_FTS_COLUMN = "search_vector"  # stored tsvector of search_text, PostgreSQL only
PG_NAME_INDEX = "ix_datasets_name_trgm"  # trigram index on dataset names, if pg_trgm is there
FTS_CONFIG = "english"  # PostgreSQL text search configuration (SQLite: porter unicode61)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project", "name", name="uq_datasets_project_name"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("pid", String(128), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("files", Integer, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("search_text", Text, nullable=False),
    UniqueConstraint("dataset_id", "digest", name="uq_versions_content"),
    UniqueConstraint("dataset_id", "number", name="uq_versions_number"),
)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", Integer, ForeignKey("dataset_versions.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("hash", String(80), nullable=False),
)

# Metadata filters: one row per (key path, scalar value) of a version, lists expanded
# (``model.datasets.meta_pairs``); (key, value, version_id) finds the newest matches first.
version_meta = Table(
    "version_meta",
    metadata,
    Column("version_id", Integer, ForeignKey("dataset_versions.id"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(200), primary_key=True),
    Index("ix_version_meta_lookup", "key", "value", "version_id"),
)

replicas = Table(
    "replicas",
    metadata,
    Column("version_id", Integer, ForeignKey("dataset_versions.id"), primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("tier", String(64), primary_key=True),
    Column("location", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_read_at", Float),
    Index("ix_replicas_tier", "site", "tier"),
)

# Provenance: an activity is one task run; it used some versions and generated others.
activities = Table(
    "activities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("task_id", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("run_id", "task_id", name="uq_activities_task"),
)

activity_io = Table(
    "activity_io",
    metadata,
    Column("activity_id", Integer, ForeignKey("activities.id"), primary_key=True),
    Column("version_id", Integer, ForeignKey("dataset_versions.id"), primary_key=True),
    Column("role", String(16), primary_key=True),  # "used" | "generated"
    Index("ix_activity_io_version", "version_id", "role"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("owner", String(256)),
    Column("files_total", Integer, nullable=False),
    Column("files_done", Integer, nullable=False),
    Column("bytes_total", BigInteger, nullable=False),
    Column("bytes_done", BigInteger, nullable=False),
    Column("error", Text),
    Column("options", Text, nullable=False),
    Index("ix_transfers_created", "created_at"),
)

transfer_items = Table(
    "transfer_items",
    metadata,
    Column("transfer_id", String(32), ForeignKey("transfers.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("src", Text, nullable=False),
    Column("dst", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("hash", String(80)),
    Column("expected_hash", String(80)),
    Column("offset", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("resume", Text, nullable=False),
)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name`` hook: leave the full-text objects (not in ``metadata``) out
    of schema comparisons and autogenerate."""
    if type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False
    if type_ == "column" and name == PG_FTS_COLUMN:
        return False
    return not (type_ == "index" and name in (PG_FTS_INDEX, PG_NAME_INDEX))
