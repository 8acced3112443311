"""/api/v1/runs/{run}/events: a run's task and run state changes as server-sent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hexflow.service.api.deps import caller, service
from hexflow.service.api.models import ERRORS
from hexflow.service.api.tasks import SSE, STREAM_HEADERS
from hexflow.service.auth import Principal
from hexflow.service.core import Service
from hexflow.service.sse import run_events

router = APIRouter(prefix="/api/v1", tags=["runs"], responses=ERRORS)


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": SSE, "description": "task, run and end events"}},
)
async def events(
    run_id: str,
    request: Request,
    who: Annotated[Principal, Depends(caller)],
    svc: Annotated[Service, Depends(service)],
    poll: Annotated[
        float, Query(ge=0.05, le=10, description="seconds between looks at the run")
    ] = 0.25,
) -> StreamingResponse:
    """Server-sent events: first every task's state (``task``) and the run's (``run``), then
    each change, and ``end`` once the run has ended. Reconnecting starts a fresh snapshot."""
    run = await run_in_threadpool(svc.runs.get, who, run_id)
    stream = run_events(svc.db, run, disconnected=request.is_disconnected, poll=poll)
    return StreamingResponse(stream, media_type="text/event-stream", headers=STREAM_HEADERS)
