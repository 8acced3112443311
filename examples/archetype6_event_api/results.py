"""The results database of demo 6 (SQLite): one row per shot received, one per result.

Writers upsert (a function that runs again after a crash writes the same row), each in its
own short transaction with a busy timeout, as several function workers write at once.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS shots (
    shot INTEGER PRIMARY KEY, energy REAL NOT NULL, invocation TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    shot INTEGER PRIMARY KEY, run_id TEXT NOT NULL, run_state TEXT NOT NULL,
    t_max REAL, t_max_expected REAL, n_max INTEGER, deviation REAL,
    event_seq INTEGER NOT NULL, event_at REAL NOT NULL, written_at REAL NOT NULL
);
"""
RESULT_COLUMNS = (
    "shot", "run_id", "run_state", "t_max", "t_max_expected", "n_max", "deviation",
    "event_seq", "event_at",
)  # fmt: skip


def connect(path: str | Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30)
    con.executescript(SCHEMA)
    return con


def record_shot(path: str, shot: int, energy: float, invocation: str, now: float) -> None:
    with closing(connect(path)) as con, con:
        con.execute(
            "INSERT INTO shots VALUES (?, ?, ?, ?) ON CONFLICT (shot) DO UPDATE SET "
            "energy = excluded.energy, invocation = excluded.invocation",
            (shot, energy, invocation, now),
        )


def record_result(path: str, row: dict[str, Any], now: float) -> None:
    values = [row.get(c) for c in RESULT_COLUMNS] + [now]
    marks = ", ".join("?" for _ in values)
    with closing(connect(path)) as con, con:
        con.execute(f"INSERT OR REPLACE INTO results VALUES ({marks})", values)  # noqa: S608


def read(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of both tables, by shot."""
    with closing(connect(path)) as con:
        con.row_factory = sqlite3.Row
        return {
            table: [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY shot")]  # noqa: S608
            for table in ("shots", "results")
        }
