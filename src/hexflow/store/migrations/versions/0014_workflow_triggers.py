"""Triggers that submit a workflow: the workflow's YAML (a template whose ``params`` the
event fills in) beside the function a trigger calls otherwise.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("workflow", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("workflow")
