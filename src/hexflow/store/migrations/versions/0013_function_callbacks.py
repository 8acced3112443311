"""Functions: the QoS of the workflows a function submits for events, and the callback URLs
of asynchronous invocations with the state of their delivery.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("qos", sa.String(16)))
    op.create_table(
        "invocation_callbacks",
        sa.Column("invocation_id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("due_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("delivered_at", sa.Float),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_invocation_callbacks_due", "invocation_callbacks", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_invocation_callbacks_due", table_name="invocation_callbacks")
    op.drop_table("invocation_callbacks")
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("qos")
