"""Tables of the event bus, functions and triggers (migration 0008).

``events`` is the durable log: ``seq`` numbers events in commit order (SQLite serializes
writers; on PostgreSQL writers take a transaction lock first, see ``events_sql``), and a
non-null ``key`` is unique, so a producer that retries logs an event once. ``event_offsets``
holds how far each consumer has handled the log; ``event_actions`` the deduplication keys
of actions already taken. They live on the store's one ``metadata``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text

from hexflow.store.schema import metadata

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("project", String(64)),
    Column("subject", String(256), nullable=False),
    Column("data", Text, nullable=False),
    Column("key", String(255)),
    sqlite_autoincrement=True,  # a seq is never reused, even after the newest row is deleted
)
# Unique keys, indexed only where there is one: the engine's events have none, and an
# index entry per event would cost its group commit (readers scan by ``seq``).
Index(
    "ux_events_key",
    events.c.key,
    unique=True,
    sqlite_where=events.c.key.is_not(None),
    postgresql_where=events.c.key.is_not(None),
)

event_offsets = Table(
    "event_offsets",
    metadata,
    Column("consumer", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

functions = Table(
    "functions",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("source", Text),
    Column("schema", Text, nullable=False),
    Column("env", Text, nullable=False),
    Column("cpus", Float, nullable=False),
    Column("memory", Integer),
    Column("timeout", Float, nullable=False),
    Column("min_workers", Integer, nullable=False),
    Column("max_workers", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("qos", String(16)),  # of the workflows it submits for events (migration 0013)
)

invocations = Table(
    "invocations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("function", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("args", Text, nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("traceback", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("caller", String(128), nullable=False),
    Column("source", String(128), nullable=False),
    Column("key", String(255), unique=True),
    Column("attempt", Integer, nullable=False),
    Column("owner", String(256)),  # the server process running it (host:pid:start)
    Index("ix_invocations_project_created", "project", "created_at"),
    Index("ix_invocations_state", "state"),
)

# Callback URLs of asynchronous invocations and their delivery (migration 0013): written
# before the invocation, marked ``due`` by the callback consumer when it has finished.
invocation_callbacks = Table(
    "invocation_callbacks",
    metadata,
    Column("invocation_id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("state", String(16), nullable=False),  # waiting, due, delivered, abandoned
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),  # when the consumer saw the invocation end
    Column("due_at", Float),  # the next attempt
    Column("attempts", Integer, nullable=False),
    Column("delivered_at", Float),
    Column("last_error", Text),
    Index("ix_invocation_callbacks_due", "state", "due_at"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("function", String(64), nullable=False),
    Column("config", Text, nullable=False),
    Column("args", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("secret", String(128)),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("fired", Integer, nullable=False),
    Column("last_fired_at", Float),
    Column("last_error", Text),
    Column("workflow", Text),  # a workflow trigger: the YAML it submits (function: "")
    Index("ix_triggers_project", "project", "name"),
)

# Nonces of signed webhook requests, kept until their timestamp is out of tolerance.
hook_nonces = Table(
    "hook_nonces",
    metadata,
    Column("trigger_id", String(32), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_hook_nonces_expires", "expires_at"),
)
