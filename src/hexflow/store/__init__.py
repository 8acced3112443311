"""Persistence of runs and tasks behind one interface (``Store``).

``open_store(url)`` picks the backend: ``memory://`` or any SQLAlchemy URL.
"""

from __future__ import annotations

from hexflow.store.base import CancelRequest, Store
from hexflow.store.memory import MemoryStore
from hexflow.store.sql import SqlStore, sqlite_url


def open_store(url: str) -> Store:
    if url == "memory://":
        return MemoryStore()
    return SqlStore(url)


__all__ = ["CancelRequest", "MemoryStore", "SqlStore", "Store", "open_store", "sqlite_url"]
