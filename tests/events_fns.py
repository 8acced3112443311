"""Functions the event, function and trigger tests register by import path."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel

from hexflow.events import FunctionContext


def add(x: int, y: int = 0) -> int:
    return x + y


class Point(BaseModel):
    x: float
    y: float


def norm(p: Point, scale: float = 1.0) -> dict[str, Any]:
    return {"norm": (p.x**2 + p.y**2) ** 0.5 * scale, "type": type(p).__name__}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def pid() -> int:
    return os.getpid()


def record(path: str, event: dict[str, Any] | None = None, tag: str = "") -> int:
    """Append one line per call to ``path`` (the tests count the lines: exactly once)."""
    inv = os.environ.get("HEXFLOW_INVOCATION_ID", "-")
    with open(path, "a") as f:
        f.write(f"{tag} {event['seq'] if event else '-'} {event['kind'] if event else '-'} {inv}\n")
    return os.getpid()


def started(event: dict[str, Any] | None = None) -> dict[str, Any]:
    """When it started, and the event that called it (the latency benchmark reads both)."""
    return {"started": time.time(), "at": event["at"] if event else None}


def submit_and_watch(ctx: FunctionContext, path: str) -> str:
    """Submit a workflow; when its run ends, call ``record`` with the event."""
    run_id = ctx.submit({"name": "from-fn", "tasks": {"a": {"command": ["echo", "hi"]}}})
    ctx.on_completion(run_id, "record", {"path": path, "tag": "done"})
    return run_id


def submit_work(ctx: FunctionContext, event: dict[str, Any] | None = None) -> str:
    """Submit a one-task workflow (the QoS tests read the QoS its task got)."""
    return ctx.submit(
        {
            "name": "event-work",
            "tasks": {
                "a": {"command": ["true"]},
                "b": {"command": ["true"], "qos": "preempt"},
            },
        }
    )


def keep(ctx: FunctionContext, name: str, value: float, tier: str = "qss") -> dict[str, Any]:
    """Keep a result in a tier of the project and in the project's database."""
    files = ctx.tier(tier)
    where = files.write_text(f"results/{name}.txt", str(value))
    db = ctx.database()
    try:
        db.execute("CREATE TABLE IF NOT EXISTS results (name TEXT PRIMARY KEY, value REAL)")
        db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (name, value))
        total = db.execute("SELECT sum(value) FROM results").fetchone()[0]
    finally:
        db.close()
    return {
        "where": where,
        "files": sorted(files.list("results")),
        "back": files.read_text(f"results/{name}.txt"),
        "total": total,
    }


def write_to(ctx: FunctionContext, tier: str, path: str) -> str:
    return ctx.tier(tier).write_text(path, "x")


def digest(ctx: FunctionContext, data: Any) -> dict[str, Any]:
    """Read an upload passed by reference."""
    import hashlib

    blob = ctx.read_bytes(data)
    with ctx.open(data) as f:
        head = f.read(4)
    return {"size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(), "head": head.hex()}
