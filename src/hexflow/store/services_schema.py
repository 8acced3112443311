"""The ``container_services`` table (migration 0011): one row per long-lived service
container, keyed by (project, name); a host port belongs to one service at a time."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, String, Table, Text

from hexflow.store.schema import metadata

container_services = Table(
    "container_services",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("container", String(160), nullable=False),
    Column("image", String(255), nullable=False),
    Column("host_port", Integer, nullable=False, unique=True),
    Column("spec", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("health", String(16), nullable=False),
    Column("restarts", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False, default=""),
    Column("user_name", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
