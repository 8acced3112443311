"""SQLAlchemy table definitions; Alembic migrations in ``migrations/`` create them.

``SCHEMA_HEAD`` must equal the newest Alembic revision (a test checks it); opening a
store at that revision skips running Alembic, which keeps CLI start-up fast.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_HEAD = "0014"

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("workdir", Text, nullable=False),
    Column("owner", String(256)),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("config", Text, nullable=False, default="{}"),
    Column("project", String(64)),  # service mode: the project the run belongs to (0005)
    Index("ix_runs_project_created", "project", "created_at"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("task_id", String(256), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("name", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("spec", LargeBinary, nullable=False),
    Column("submitted_at", Float),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("retry_at", Float),
    Column("result", LargeBinary),
    Column("exit_code", Integer),
    Column("reason", String(64)),
    Column("error", Text),
    Column("traceback", Text),
    Column("root_cause", String(256)),
    Column("cache_key", String(128)),
    Column("cached", Boolean, nullable=False, default=False),
    Column("worker", String(128)),
    Column("join_id", String(256)),
    Column("preemptions", Integer, nullable=False, default=0, server_default="0"),
    Column("image", String(512)),  # the container image the attempt ran in (0007)
    Column("image_digest", String(160)),
    Column("site", String(64)),  # the site it is queued or runs at (0010)
    Column("moves", Text),  # JSON list of its moves between sites, NULL: none
)
# Only tasks with a cache key are indexed (``cache_key = ?`` lookups use it). Each index on
# an updated column costs every task update, so there is none on ``state`` (migration 0003).
Index(
    "ix_tasks_cache_key",
    tasks.c.cache_key,
    sqlite_where=tasks.c.cache_key.is_not(None),
    postgresql_where=tasks.c.cache_key.is_not(None),
)

cancel_requests = Table(
    "cancel_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("task_id", String(256)),
    Column("requested_at", Float, nullable=False),
    Column("handled", Boolean, nullable=False, default=False),
    Index("ix_cancel_run", "run_id", "handled"),
)

# The data lifecycle tables (catalog, replicas, provenance, transfers; 0006) and the
# service tables (users, projects, tokens, audit...; 0005) and the event bus, functions
# and triggers (0008) share this metadata.
from hexflow.store import data_schema as _data_schema  # noqa: E402,F401
from hexflow.store import events_schema as _events_schema  # noqa: E402,F401
from hexflow.store import service_schema as _service_schema  # noqa: E402,F401
from hexflow.store import services_schema as _services_schema  # noqa: E402,F401
