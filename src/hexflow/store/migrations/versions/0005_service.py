"""Service mode: users, projects, memberships, API tokens, OAuth clients, used client
assertions, the audit log, idempotency keys, and the project of a run.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("project", sa.String(64)))
    op.create_index("ix_runs_project_created", "runs", ["project", "created_at"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), primary_key=True),
        sa.Column("project_name", sa.String(64), sa.ForeignKey("projects.name"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("project_name", sa.String(64), sa.ForeignKey("projects.name")),
        sa.Column("scopes", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(13), primary_key=True),
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("project_name", sa.String(64), sa.ForeignKey("projects.name")),
        sa.Column("scopes", sa.String(128), nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "oauth_assertions",
        sa.Column("client_id", sa.String(13), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_oauth_assertions_expires", "oauth_assertions", ["expires_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("source", sa.String(64)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_project", "audit_log", ["project", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("audit_log")
    op.drop_table("oauth_assertions")
    op.drop_table("oauth_clients")
    op.drop_table("api_tokens")
    op.drop_table("memberships")
    op.drop_table("projects")
    op.drop_table("users")
    op.drop_index("ix_runs_project_created", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("project")
