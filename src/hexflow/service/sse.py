"""Server-sent event streams of a run: its task and run state changes, and a task's log as
it is written.

Both streams poll the database and the log files (runs are driven by any server on the
same database, so there is no in-process bus to listen to). A run stream first sends the
state of every task (a snapshot), then each change; it ends with an ``end`` event once the
run has ended. A client that reconnects gets a fresh snapshot, so it never misses a state.
Streams stop when the client goes away; a comment line every ``heartbeat`` seconds keeps
proxies from closing a quiet stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from hexflow.flow.runtime import log_paths
from hexflow.model import RunRecord, TaskRecord
from hexflow.service.tasks import read_from, utf8_decoder
from hexflow.store.service_db import ServiceDb

Disconnected = Callable[[], Awaitable[bool]]


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One event in the text/event-stream format (data is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Ticker:
    """Counts event ids and says when a heartbeat is due."""

    def __init__(self, heartbeat: float) -> None:
        self.n = 0
        self.heartbeat = heartbeat
        self.last = time.monotonic()

    def next_id(self) -> int:
        self.n += 1
        self.last = time.monotonic()
        return self.n

    def beat(self) -> str | None:
        if time.monotonic() - self.last < self.heartbeat:
            return None
        self.last = time.monotonic()
        return ": keep-alive\n\n"


async def run_events(
    db: ServiceDb,
    run: RunRecord,
    *,
    disconnected: Disconnected,
    poll: float = 0.25,
    heartbeat: float = 15.0,
) -> AsyncIterator[str]:
    projects = [run.project or ""]
    tick = _Ticker(heartbeat)
    seen: dict[str, tuple[str, int]] = {}
    run_state: str | None = None
    while True:
        current = await run_in_threadpool(db.runs.get_run, run.id, projects)
        states = await run_in_threadpool(db.runs.task_states, run.id)
        if current is None:
            return
        for task_id, state, attempt in states:
            if seen.get(task_id) != (state, attempt):
                seen[task_id] = (state, attempt)
                data = {"run_id": run.id, "task_id": task_id, "state": state, "attempt": attempt}
                yield sse("task", data, tick.next_id())
        if current.state.value != run_state:
            run_state = current.state.value
            yield sse("run", _run_data(current), tick.next_id())
        if current.state.terminal:
            yield sse("end", _run_data(current), tick.next_id())
            return
        beat = tick.beat()
        if beat:
            yield beat
        if await _wait(disconnected, poll):
            return


async def log_events(
    db: ServiceDb,
    run: RunRecord,
    task: TaskRecord,
    *,
    attempt: int | None,
    disconnected: Disconnected,
    poll: float = 0.25,
    heartbeat: float = 15.0,
) -> AsyncIterator[str]:
    """``stdout``/``stderr`` events ({"text"}) as the attempt writes them, ``attempt`` when
    a new attempt starts (unless one was asked for), ``end`` when the task has ended."""
    tick = _Ticker(heartbeat)
    current = attempt or max(task.attempt, 1)
    offsets = {"stdout": 0, "stderr": 0}
    decoders = {"stdout": utf8_decoder(), "stderr": utf8_decoder()}
    final = False
    while True:
        paths = dict(zip(("stdout", "stderr"), log_paths(run, task, current), strict=True))
        for stream, path in paths.items():
            while True:
                data = await run_in_threadpool(read_from, path, offsets[stream])
                if not data:
                    break
                offsets[stream] += len(data)
                text = decoders[stream].decode(data)
                if text:
                    yield sse(stream, {"text": text, "attempt": current}, tick.next_id())
        if final:
            yield sse("end", _task_data(task), tick.next_id())
            return
        found = await run_in_threadpool(db.runs.get_task, run.id, task.id)
        if found is None:
            return
        task = found
        if attempt is None and task.attempt > current:
            current = task.attempt
            offsets = {"stdout": 0, "stderr": 0}
            decoders = {"stdout": utf8_decoder(), "stderr": utf8_decoder()}
            yield sse("attempt", {"attempt": current}, tick.next_id())
            continue
        if task.state.terminal or (attempt is not None and task.attempt > attempt):
            final = True  # one more pass picks up the tail
            continue
        beat = tick.beat()
        if beat:
            yield beat
        if await _wait(disconnected, poll):
            return


async def _wait(disconnected: Disconnected, seconds: float) -> bool:
    """Sleep ``seconds``; True if the client has gone away."""
    await anyio.sleep(seconds)
    return await disconnected()


def _run_data(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "state": run.state.value,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
    }


def _task_data(task: TaskRecord) -> dict[str, Any]:
    return {
        "run_id": task.run_id,
        "task_id": task.id,
        "state": task.state.value,
        "attempt": task.attempt,
        "exit_code": task.exit_code,
        "reason": task.reason,
    }
