"""Tables and JSON output for the CLI."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

_STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "upstream_failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "retrying": "magenta",
}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _dur(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    if end is None:
        return "…"
    secs = end - start
    return f"{secs * 1000:.0f}ms" if secs < 1 else f"{secs:.1f}s"


def _state(value: str) -> str:
    style = _STATE_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def runs_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="runs (newest first)")
    for col in ("run", "name", "state", "created", "duration"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            r["run_id"],
            r["name"],
            _state(r["state"]),
            _when(r["created_at"]),
            _dur(r["started_at"], r["ended_at"]),
        )
    return table


def run_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title=f"run {summary['run_id']} ({summary['name']})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("state", _state(summary["state"]))
    table.add_row("created", _when(summary.get("created_at")))
    table.add_row("duration", _dur(summary.get("started_at"), summary.get("ended_at")))
    counts = summary.get("tasks") or {}
    table.add_row("tasks", ", ".join(f"{_state(k)} {v}" for k, v in sorted(counts.items())) or "-")
    table.add_row("workdir", str(summary.get("workdir")))
    return table


def task_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} task(s)")
    sites = any(r.get("site") for r in rows) and len({r.get("site") for r in rows}) > 1
    moved = any(r.get("moves") for r in rows)
    cols = ["task", "state", "attempt", "duration", "exit", "detail"]
    if sites or moved:  # several sites: where each task is, and its moves
        cols.insert(2, "site")
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        detail = r.get("error") or r.get("reason") or ("cached" if r.get("cached") else "")
        if r.get("moves") and r.get("state") == "succeeded":  # say it moved, and why
            last = r["moves"][-1]
            detail = f"moved {last['from']} → {last['to'] or '?'}: {last['reason']}"
        cells = [
            r["task_id"],
            _state(r["state"]),
            str(r["attempt"]),
            _dur(r["started_at"], r["ended_at"]),
            "-" if r["exit_code"] is None else str(r["exit_code"]),
            str(detail or ""),
        ]
        if sites or moved:
            cells.insert(2, str(r.get("site") or "-"))
        table.add_row(*cells)
    return table
