"""The event bus, functions and triggers: the durable event log (``events``, numbered by
``seq``), consumer offsets, registered functions (versioned), their invocations, triggers
and the nonces of signed webhook requests.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("key", sa.String(255)),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ux_events_key",
        "events",
        ["key"],
        unique=True,
        sqlite_where=sa.text("key IS NOT NULL"),
        postgresql_where=sa.text("key IS NOT NULL"),
    )
    op.create_table(
        "event_offsets",
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "functions",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("env", sa.Text, nullable=False),
        sa.Column("cpus", sa.Float, nullable=False),
        sa.Column("memory", sa.Integer),
        sa.Column("timeout", sa.Float, nullable=False),
        sa.Column("min_workers", sa.Integer, nullable=False),
        sa.Column("max_workers", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "invocations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("caller", sa.String(128), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("key", sa.String(255), unique=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(256)),
    )
    op.create_index("ix_invocations_project_created", "invocations", ["project", "created_at"])
    op.create_index("ix_invocations_state", "invocations", ["state"])
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("secret", sa.String(128)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("fired", sa.Integer, nullable=False),
        sa.Column("last_fired_at", sa.Float),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_triggers_project", "triggers", ["project", "name"])
    op.create_table(
        "hook_nonces",
        sa.Column("trigger_id", sa.String(32), primary_key=True),
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_hook_nonces_expires", "hook_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_hook_nonces_expires", table_name="hook_nonces")
    op.drop_table("hook_nonces")
    op.drop_index("ix_triggers_project", table_name="triggers")
    op.drop_table("triggers")
    op.drop_index("ix_invocations_state", table_name="invocations")
    op.drop_index("ix_invocations_project_created", table_name="invocations")
    op.drop_table("invocations")
    op.drop_table("functions")
    op.drop_table("event_offsets")
    op.drop_index("ux_events_key", table_name="events")
    op.drop_table("events")
