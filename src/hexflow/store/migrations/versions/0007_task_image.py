"""Tasks record the container image they ran in.

``image``: the image name the attempt ran (a task's ``image=``); ``image_digest``: the
digest of exactly that image (its manifest digest, or the image id when it has none), as
the runtime resolved it at launch. Both are NULL for bare tasks.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("image", sa.String(512)))
        batch.add_column(sa.Column("image_digest", sa.String(160)))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("image_digest")
        batch.drop_column("image")
