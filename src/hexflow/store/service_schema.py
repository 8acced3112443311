"""Tables of service mode: users, projects, memberships, API tokens, OAuth clients, used
client assertions, the audit log and idempotency keys (migration 0005), and the groups of
the SFAPI facade (0012).

They live on the store's one ``metadata`` (``schema.py`` imports this module), so Alembic
and the schema test see a single schema. Names are the keys: user and project names never
change once created.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from hexflow.store.schema import metadata

users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_name", String(64), ForeignKey("users.name"), primary_key=True),
    Column("project_name", String(64), ForeignKey("projects.name"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(64), ForeignKey("users.name"), nullable=False),
    Column("project_name", String(64), ForeignKey("projects.name")),
    Column("scopes", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("label", String(128), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(13), primary_key=True),
    Column("user_name", String(64), ForeignKey("users.name"), nullable=False),
    Column("project_name", String(64), ForeignKey("projects.name")),
    Column("scopes", String(128), nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("name", String(128), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
)

# Client assertions seen (RFC 7523 ``jti``), kept until they expire: a replay is refused.
oauth_assertions = Table(
    "oauth_assertions",
    metadata,
    Column("client_id", String(13), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_oauth_assertions_expires", "expires_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("project", String(64)),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status", Integer),
    Column("source", String(64)),
    Column("detail", Text),
    Index("ix_audit_project", "project", "id"),
)

# ``Idempotency-Key`` of submitting requests: the run a key created, per user.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_name", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("project", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

# SFAPI groups (migration 0012): named sets of users inside one project. Group and project
# names share one namespace, since a project is also shown as the group of its members.
user_groups = Table(
    "user_groups",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("project_name", String(64), ForeignKey("projects.name"), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_user_groups_project", "project_name"),
)

user_group_members = Table(
    "user_group_members",
    metadata,
    Column("group_name", String(64), ForeignKey("user_groups.name"), primary_key=True),
    Column("user_name", String(64), ForeignKey("users.name"), primary_key=True),
    Column("added_by", String(64), nullable=False),
    Column("added_at", Float, nullable=False),
)
