"""Groups of the SFAPI facade: named sets of users inside one project (docs/sfapi.md).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_groups",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("project_name", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_user_groups_project", "user_groups", ["project_name"])
    op.create_table(
        "user_group_members",
        sa.Column("group_name", sa.String(64), sa.ForeignKey("user_groups.name"), primary_key=True),
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), primary_key=True),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_group_members")
    op.drop_index("ix_user_groups_project", table_name="user_groups")
    op.drop_table("user_groups")
