"""/api/v1/runs/{run}/tasks/{task}: one task — get, cancel, its result, its logs (JSON, or
a server-sent event stream with ``follow=true``) — and every task's logs of a run."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from hexflow.errors import ServiceError
from hexflow.service.api.deps import caller, service, source
from hexflow.service.api.models import ERRORS, LogPage, LogsOut, TaskOut, TaskResultOut
from hexflow.service.auth import Principal
from hexflow.service.core import Service
from hexflow.service.sse import log_events
from hexflow.service.tasks import MAX_TAIL

router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERRORS)

Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Service, Depends(service)]
Tail = Annotated[
    int, Query(ge=0, le=MAX_TAIL, description="at most this many bytes from the end of each log")
]
SSE = {"text/event-stream": {"schema": {"type": "string"}}}
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/runs/{run_id}/tasks/{task_id}", response_model=TaskOut)
def get_task(run_id: str, task_id: str, who: Caller, svc: Svc) -> TaskOut:
    """One task of a run."""
    _, task = svc.tasks.get(who, run_id, task_id)
    return TaskOut.of(task)


@router.post("/runs/{run_id}/tasks/{task_id}/cancel", response_model=TaskOut)
def cancel_task(run_id: str, task_id: str, request: Request, who: Caller, svc: Svc) -> TaskOut:
    """Cancel one task; the tasks that depend on it end upstream_failed."""
    return TaskOut.of(svc.tasks.cancel(who, run_id, task_id, source=source(request)))


@router.get(
    "/runs/{run_id}/tasks/{task_id}/result",
    response_model=TaskResultOut,
    responses={409: {"description": "the task has not ended yet"}},
)
def task_result(run_id: str, task_id: str, who: Caller, svc: Svc) -> TaskResultOut:
    """The outcome of an ended task: a Python task's return value or exception, pickled
    (base64), for ``hexflow.Client`` futures; and how it ended."""
    _, task = svc.tasks.get(who, run_id, task_id)
    if not task.state.terminal:
        raise ServiceError(
            f"task {task.id} has not ended (state {task.state.value})",
            hint=f"follow GET /api/v1/runs/{run_id}/events until it ends",
            status=409,
        )
    return TaskResultOut(
        run_id=task.run_id,
        task_id=task.id,
        name=task.name,
        kind=task.spec.kind.value,
        state=task.state.value,
        attempt=task.attempt,
        reason=task.reason,
        error=task.error,
        exit_code=task.exit_code,
        traceback=task.traceback,
        root_cause=task.root_cause,
        result=base64.b64encode(task.result).decode() if task.result is not None else None,
    )


@router.get(
    "/runs/{run_id}/tasks/{task_id}/logs",
    response_model=LogsOut,
    responses={200: {"content": SSE, "description": "JSON, or with follow=true an SSE stream"}},
)
async def task_logs(
    run_id: str,
    task_id: str,
    request: Request,
    who: Caller,
    svc: Svc,
    follow: Annotated[
        bool,
        Query(description="stream the log as server-sent events (stdout, stderr, attempt, end)"),
    ] = False,
    attempt: Annotated[int | None, Query(ge=1, description="default: the latest")] = None,
    tail: Tail = MAX_TAIL,
) -> Any:
    """A task's stdout and stderr; with ``follow=true`` a stream until the task ends."""
    if not follow:
        body = await run_in_threadpool(
            svc.tasks.logs, who, run_id, task_id, attempt=attempt, tail=tail
        )
        return JSONResponse(body)
    run, task = await run_in_threadpool(svc.tasks.get, who, run_id, task_id)
    if attempt is not None and attempt > max(task.attempt, 1):
        raise ServiceError(
            f"task {task.id} has no attempt {attempt} (it has {task.attempt})",
            hint="omit attempt to follow the latest",
            status=422,
            field="attempt",
        )
    stream = log_events(svc.db, run, task, attempt=attempt, disconnected=request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/runs/{run_id}/logs", response_model=LogPage)
def run_logs(
    run_id: str,
    who: Caller,
    svc: Svc,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="tasks per page")] = 20,
    tail: Annotated[int, Query(ge=0, le=1 << 20, description="bytes per log")] = 64 << 10,
) -> LogPage:
    """The latest attempt's logs of every task, in creation order (no streaming)."""
    items, next_cursor = svc.tasks.run_logs(who, run_id, cursor=cursor, limit=limit, tail=tail)
    return LogPage(items=[LogsOut(**i) for i in items], next_cursor=next_cursor)
