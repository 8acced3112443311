"""Data lifecycle: the dataset catalog (datasets, content-addressed versions, their files and
replicas, provenance activities), full-text search over versions, and transfers.

Full text: an FTS5 table ``catalog_fts`` (rowid = version id) on SQLite; a GIN index on
``to_tsvector('english', search_text)`` on PostgreSQL.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("project", "name", name="uq_datasets_project_name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("pid", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("search_text", sa.Text, nullable=False),
        sa.UniqueConstraint("dataset_id", "digest", name="uq_versions_content"),
        sa.UniqueConstraint("dataset_id", "number", name="uq_versions_number"),
    )
    op.create_table(
        "version_files",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(80), nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("tier", sa.String(64), primary_key=True),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_read_at", sa.Float),
    )
    op.create_index("ix_replicas_tier", "replicas", ["site", "tier"])
    op.create_table(
        "activities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("run_id", "task_id", name="uq_activities_task"),
    )
    op.create_table(
        "activity_io",
        sa.Column("activity_id", sa.Integer, sa.ForeignKey("activities.id"), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("dataset_versions.id"), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
    )
    op.create_index("ix_activity_io_version", "activity_io", ["version_id", "role"])
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("owner", sa.String(256)),
        sa.Column("files_total", sa.Integer, nullable=False),
        sa.Column("files_done", sa.Integer, nullable=False),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("options", sa.Text, nullable=False),
    )
    op.create_index("ix_transfers_created", "transfers", ["created_at"])
    op.create_table(
        "transfer_items",
        sa.Column("transfer_id", sa.String(32), sa.ForeignKey("transfers.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("src", sa.Text, nullable=False),
        sa.Column("dst", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(80)),
        sa.Column("expected_hash", sa.String(80)),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("resume", sa.Text, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE catalog_fts USING fts5(search_text, tokenize='porter unicode61')"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE INDEX ix_catalog_fts ON dataset_versions "
            "USING gin (to_tsvector('english', search_text))"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS catalog_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_fts")
    op.drop_table("transfer_items")
    op.drop_index("ix_transfers_created", table_name="transfers")
    op.drop_table("transfers")
    op.drop_index("ix_activity_io_version", table_name="activity_io")
    op.drop_table("activity_io")
    op.drop_table("activities")
    op.drop_index("ix_replicas_tier", table_name="replicas")
    op.drop_table("replicas")
    op.drop_table("version_files")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
