"""Catalog search at scale: ``version_meta`` (one row per metadata key path and scalar
value of a version, lists expanded) indexed on (key, value, version_id) for metadata
filters, filled for the versions already there; on PostgreSQL a stored ``search_vector``
column with a GIN index replaces the expression index of 0006, so a match is checked
without parsing the text again, and dataset names get a trigram index (pg_trgm) when the
server allows it.

Revision ID: 0009
Revises: 0008
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KEY_MAX, _VALUE_MAX = 128, 200  # as hexflow.model.datasets


def _pairs(metadata: Any) -> set[tuple[str, str]]:
    """``model.datasets.meta_pairs`` as of this revision (a migration stays as written)."""
    out: set[tuple[str, str]] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{k}" if key else str(k), v)
        elif isinstance(value, list):
            for v in value:
                walk(key, v)
        elif key and value is not None:
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int | float):
                text = json.dumps(value)
            else:
                text = str(value)
            if len(key) <= _KEY_MAX and len(text) <= _VALUE_MAX:
                out.add((key, text))

    walk("", metadata)
    return out


def upgrade() -> None:
    meta = op.create_table(
        "version_meta",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
    )
    op.create_index("ix_version_meta_lookup", "version_meta", ["key", "value", "version_id"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, metadata FROM dataset_versions")).all()
    batch: list[dict[str, Any]] = []
    for vid, text in rows:
        batch.extend({"version_id": vid, "key": k, "value": v} for k, v in _pairs(json.loads(text)))
        if len(batch) >= 5000:
            op.bulk_insert(meta, batch)
            batch = []
    if batch:
        op.bulk_insert(meta, batch)
    if conn.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_fts")
        op.execute(
            "ALTER TABLE dataset_versions ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED"
        )
        op.execute("CREATE INDEX ix_catalog_search ON dataset_versions USING gin (search_vector)")
        # Name searches (ILIKE '%word%') through trigrams, where the server lets this user
        # create the extension (pg_trgm is trusted since PostgreSQL 13); else they scan.
        savepoint = conn.begin_nested()
        try:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            conn.execute(
                sa.text(
                    "CREATE INDEX ix_datasets_name_trgm ON datasets USING gin (name gin_trgm_ops)"
                )
            )
        except sa.exc.DBAPIError:
            savepoint.rollback()
        else:
            savepoint.commit()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_datasets_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_catalog_search")
        op.execute("ALTER TABLE dataset_versions DROP COLUMN IF EXISTS search_vector")
        op.execute(
            "CREATE INDEX ix_catalog_fts ON dataset_versions "
            "USING gin (to_tsvector('english', search_text))"
        )
    op.drop_index("ix_version_meta_lookup", table_name="version_meta")
    op.drop_table("version_meta")
