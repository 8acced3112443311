"""/api/v1/triggers, /api/v1/hooks/{id} (signed webhooks, no bearer token) and
/api/v1/events (the durable event log: read after an offset, or follow as server-sent
events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hexflow.service.api.deps import caller, service, source
from hexflow.service.api.events_models import (
    EventOut,
    EventPage,
    HookAccepted,
    TriggerIn,
    TriggerList,
    TriggerOut,
)
from hexflow.service.api.models import ERRORS
from hexflow.service.api.tasks import SSE, STREAM_HEADERS
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["events"], responses=ERRORS)
hooks = APIRouter(tags=["events"])  # public: signed requests instead

Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Service, Depends(service)]
HOOK_PATH = "/api/v1/hooks/{trigger_id}"


@router.post("/triggers", status_code=201, response_model=TriggerOut)
def create_trigger(
    body: TriggerIn,
    request: Request,
    who: Caller,
    svc: Svc,
    project: Annotated[str | None, Query(description="default: your only project")] = None,
) -> TriggerOut:
    """Create a trigger: when a webhook is called, a file arrives, a schedule ticks or an
    event is logged, call the function — or submit the workflow (``workflow``: its YAML,
    with params from ``args`` and the event). A webhook's secret is in this answer only."""
    trigger = svc.triggers.create(
        who,
        project,
        name=body.name,
        kind=body.kind,
        function=body.function,
        config=body.config,
        args=body.args,
        source=source(request),
        workflow=body.workflow,
    )
    return TriggerOut.of(trigger, with_secret=True)


@router.get("/triggers", response_model=TriggerList)
def list_triggers(
    who: Caller, svc: Svc, project: Annotated[str | None, Query()] = None
) -> TriggerList:
    """The triggers of your projects, with how often and when they last fired."""
    return TriggerList(items=[TriggerOut.of(t) for t in svc.triggers.list_triggers(who, project)])


@router.delete("/triggers/{trigger_id}", response_model=TriggerOut)
def delete_trigger(trigger_id: str, request: Request, who: Caller, svc: Svc) -> TriggerOut:
    return TriggerOut.of(svc.triggers.delete(who, trigger_id, source=source(request)))


@hooks.post(
    HOOK_PATH,
    status_code=202,
    response_model=HookAccepted,
    responses={401: {"description": "unsigned, badly signed, stale or replayed"}, 404: {}, 413: {}},
)
async def call_hook(trigger_id: str, request: Request, svc: Svc) -> HookAccepted:
    """A signed webhook request (X-Hexflow-Timestamp, X-Hexflow-Nonce, X-Hexflow-Signature):
    logged as a ``webhook.received`` event before the answer; the trigger's function is
    called from the event."""
    body = await _raw_body(request, svc.functions.max_payload)
    event = await svc.events.triggers.webhook(trigger_id, request.headers, body)
    return HookAccepted(seq=event.seq, trigger=trigger_id)


async def _raw_body(request: Request, limit: int) -> bytes:
    from hexflow.service.api.hotpath import read_limited

    return await read_limited(request.stream(), limit, request.headers.get("content-length"))


@router.get("/events", response_model=EventPage)
async def list_events(
    who: Caller,
    svc: Svc,
    after: Annotated[int, Query(ge=0, description="read events after this seq")] = 0,
    project: Annotated[str | None, Query(description="only this project")] = None,
    wait: Annotated[float, Query(ge=0, le=60, description="long-poll: wait up to this long")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """Logged events of your projects after ``after``, oldest first. Pass ``next_after``
    back to read on; every event stays readable (replay from any offset)."""
    items, next_after = await svc.event_log.read(
        who, after=after, project=project, wait=wait, limit=limit
    )
    return EventPage(items=[EventOut.of(e) for e in items], next_after=next_after)


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": SSE, "description": "one SSE event per logged event"}},
)
async def stream_events(
    request: Request,
    who: Caller,
    svc: Svc,
    after: Annotated[
        int | None, Query(ge=0, description="default: Last-Event-ID, else the head")
    ] = None,
    project: Annotated[str | None, Query()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Follow the log as server-sent events (``id`` = seq, ``event`` = kind). A client that
    reconnects with Last-Event-ID resumes exactly after the last event it got."""
    if after is None:
        if last_event_id and last_event_id.isdigit():
            after = int(last_event_id)
        else:
            after = await run_in_threadpool(svc.events.log.head)
    await svc.event_log.check_kept(after)
    follow = svc.event_log.follow(who, after=after, project=project)

    async def body() -> AsyncIterator[str]:
        async for event in follow:
            if await request.is_disconnected():
                return
            if event is None:
                yield ": keep-alive\n\n"
            else:
                data = json.dumps(EventOut.of(event).model_dump(), separators=(",", ":"))
                yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers=STREAM_HEADERS)
