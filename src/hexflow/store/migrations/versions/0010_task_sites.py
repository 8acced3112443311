"""Tasks record the site they run at and their moves between sites.

``site``: the site a task is queued or runs at (or last ran at); ``moves``: a JSON list of
its moves, oldest first (``[{"at", "from", "to", "reason", "attempt"}]``), NULL when it
never moved.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("site", sa.String(64)))
        batch.add_column(sa.Column("moves", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("moves")
        batch.drop_column("site")
