"""Initial schema: runs, tasks, cancel requests.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("workdir", sa.Text, nullable=False),
        sa.Column("owner", sa.String(256)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("spec", sa.LargeBinary, nullable=False),
        sa.Column("submitted_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("retry_at", sa.Float),
        sa.Column("result", sa.LargeBinary),
        sa.Column("exit_code", sa.Integer),
        sa.Column("reason", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("root_cause", sa.String(256)),
        sa.Column("cache_key", sa.String(128)),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("worker", sa.String(128)),
    )
    op.create_index("ix_tasks_run_state", "tasks", ["run_id", "state"])
    op.create_index("ix_tasks_cache_key", "tasks", ["cache_key"])
    op.create_table(
        "cancel_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(256)),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("handled", sa.Boolean, nullable=False),
    )
    op.create_index("ix_cancel_run", "cancel_requests", ["run_id", "handled"])


def downgrade() -> None:
    op.drop_table("cancel_requests")
    op.drop_table("tasks")
    op.drop_table("runs")
