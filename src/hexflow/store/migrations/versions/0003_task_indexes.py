"""Cheaper task updates: drop the unused (run_id, state) index; index only set cache keys.

Every state change of every task is an UPDATE of its row, and each index that covers an
updated column is rewritten with it. No query reads tasks by state (a run's tasks are read
by the primary key), and only cached tasks have a cache key: the cache-key index becomes
partial (``WHERE cache_key IS NOT NULL``), which ``cache_key = ?`` lookups still use.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SET = sa.text("cache_key IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_tasks_run_state", table_name="tasks")
    op.drop_index("ix_tasks_cache_key", table_name="tasks")
    op.create_index(
        "ix_tasks_cache_key", "tasks", ["cache_key"], sqlite_where=_SET, postgresql_where=_SET
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_cache_key", table_name="tasks")
    op.create_index("ix_tasks_cache_key", "tasks", ["cache_key"])
    op.create_index("ix_tasks_run_state", "tasks", ["run_id", "state"])
