"""Tasks may join a task they spawned: its result becomes theirs.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("join_id", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("join_id")
