"""/api/v1/runs: submit a workflow (YAML or JSON body), list, get, cancel, list tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hexflow.errors import ServiceError
from hexflow.model import RunState, TaskState
from hexflow.service.api.deps import app_service, caller, source
from hexflow.service.api.models import ERRORS, RunOut, RunPage, TaskOut, TaskPage
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["runs"], responses=ERRORS)

Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Service, Depends(app_service)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]

_WORKFLOW_BODY = {
    "required": True,
    "description": "A workflow in hexflow's file format (docs/yaml.md), as YAML or JSON.",
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
}


@router.post(
    "/runs",
    status_code=201,
    response_model=RunOut,
    openapi_extra={"requestBody": _WORKFLOW_BODY},
    responses={
        400: {"description": "unreadable workflow document (syntax); `line` says where"},
        409: {"description": "the same Idempotency-Key is still being processed"},
        413: {"description": "the document is too large"},
        415: {"description": "not YAML or JSON"},
    },
)
async def submit_run(
    request: Request,
    who: Caller,
    svc: Svc,
    project: Annotated[
        str | None, Query(description="project of the run (default: your only one)")
    ] = None,
    param: Annotated[list[str], Query(description="workflow parameter KEY=VALUE (repeat)")] = [],  # noqa: B006 - FastAPI copies defaults
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="a retried request never creates a 2nd run"),
    ] = None,
) -> JSONResponse:
    """Submit a workflow: the run is stored and queued before the answer (201)."""
    body = await _read_body(request, svc.config.max_body_bytes)
    done = await svc.runs.submit(
        who,
        body=body,
        content_type=request.headers.get("content-type"),
        params=param,
        project=project,
        idempotency_key=idempotency_key,
        source=source(request),
    )
    run = done.run
    if not done.replayed:
        request.app.state.metrics.runs_submitted.inc()
    counts = done.counts
    if counts is None:  # replayed: as the run is now
        counts = await run_in_threadpool(svc.runs.task_counts, run.id)
    headers = {"Location": f"/api/v1/runs/{run.id}"}
    if done.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(RunOut.of(run, counts).model_dump(), status_code=201, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ServiceError:
    return ServiceError(
        f"the workflow document is over {limit} bytes ({size} seen)",
        hint="split the workflow, or raise the server's limit",
        status=413,
    )


@router.get("/runs", response_model=RunPage)
def list_runs(
    who: Caller,
    svc: Svc,
    project: Annotated[str | None, Query(description="only this project")] = None,
    state: Annotated[RunState | None, Query(description="only runs in this state")] = None,
    name: Annotated[str | None, Query(description="only runs of this workflow name")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> RunPage:
    """The runs of your projects, newest first."""
    runs, next_cursor = svc.runs.list_runs(
        who, project=project, state=state, name=name, cursor=cursor, limit=limit
    )
    return RunPage(items=[RunOut.of(r) for r in runs], next_cursor=next_cursor)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: str, who: Caller, svc: Svc) -> RunOut:
    """One run, with its task counts by state."""
    return RunOut.of(*svc.runs.status(who, run_id))


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: str, request: Request, who: Caller, svc: Svc) -> RunOut:
    """Cancel every unfinished task of a run (a finished run is returned as it is)."""
    run = svc.runs.cancel(who, run_id, source=source(request))
    return RunOut.of(run, svc.runs.task_counts(run.id))


@router.get("/runs/{run_id}/tasks", response_model=TaskPage)
def list_tasks(
    run_id: str,
    who: Caller,
    svc: Svc,
    state: Annotated[TaskState | None, Query(description="only tasks in this state")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 100,
) -> TaskPage:
    """The tasks of a run, in the order they were created."""
    tasks, next_cursor = svc.runs.tasks(who, run_id, state=state, cursor=cursor, limit=limit)
    return TaskPage(items=[TaskOut.of(t) for t in tasks], next_cursor=next_cursor)
