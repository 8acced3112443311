"""/api/v1/functions and /api/v1/invocations: register, list and invoke functions; poll
invocations. ``invoke`` is the gateway's hot path: it stays on the event loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from hexflow.events.functions.registry import Registration
from hexflow.service.api.deps import app_service, caller, service, source
from hexflow.service.api.events_models import (
    FunctionIn,
    FunctionList,
    FunctionOut,
    InvocationOut,
    InvocationPage,
)
from hexflow.service.api.hotpath import json_args, too_large
from hexflow.service.api.models import ERRORS
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["functions"], responses=ERRORS)

Caller = Annotated[Principal, Depends(caller)]

Svc = Annotated[Service, Depends(service)]
LoopSvc = Annotated[Service, Depends(app_service)]  # for async routes: no thread hop
Project = Annotated[str | None, Query(description="the project (default: your only one)")]


@router.post("/functions", status_code=201, response_model=FunctionOut)
def register_function(
    body: FunctionIn, request: Request, who: Caller, svc: Svc, project: Project = None
) -> FunctionOut:
    """Register a function by import path or uploaded source; a new version if the name
    exists. Its arguments' JSON Schema comes from its type hints (422 if it cannot load)."""
    reg = Registration(**body.model_dump())
    fn = svc.functions.register(who, project, reg, source=source(request))
    return FunctionOut.of(fn)


@router.get("/functions", response_model=FunctionList)
def list_functions(
    who: Caller, svc: Svc, project: Annotated[str | None, Query()] = None
) -> FunctionList:
    """The newest version of each function of your projects."""
    return FunctionList(
        items=[FunctionOut.of(f) for f in svc.functions.list_functions(who, project)]
    )


@router.get("/functions/{name}", response_model=FunctionOut)
def get_function(
    name: str,
    who: Caller,
    svc: Svc,
    project: Project = None,
    version: Annotated[int | None, Query(ge=1, description="default: the newest")] = None,
) -> FunctionOut:
    return FunctionOut.of(svc.functions.get(who, name, project, version))


@router.post(
    "/functions/{name}/invoke",
    response_model=InvocationOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the arguments, as a JSON object",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    responses={
        202: {"model": InvocationOut, "description": "queued or running: poll its Location"},
        413: {"description": "the arguments are over the payload limit"},
        429: {"description": "the project is over its rate; see Retry-After"},
    },
)
async def invoke_function(
    name: str,
    request: Request,
    who: Caller,
    svc: LoopSvc,
    project: Project = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    mode: Annotated[
        str, Query(pattern="^(sync|async)$", description="sync: wait for the result")
    ] = "sync",
    wait: Annotated[float | None, Query(gt=0, le=300, description="sync: longest wait (s)")] = None,
) -> JSONResponse:
    """Call a function: 200 with the result when it ends within ``wait`` (sync), else 202
    with the invocation id (poll ``GET /api/v1/invocations/{id}``). A failed function is a
    200 too, with ``state`` failed, its error and traceback."""
    args = await _read_args(request, svc.functions.max_payload)
    fn = svc.functions.prepare(who, name, project, version, args)
    limit = wait if wait is not None else svc.config.events.sync_wait
    called = await svc.functions.invoke(who, fn, args, wait=limit if mode == "sync" else None)
    body = InvocationOut.of(called.invocation).model_dump()
    if called.done:
        return JSONResponse(body)
    location = f"/api/v1/invocations/{called.invocation.id}"
    return JSONResponse(body, status_code=202, headers={"Location": location})


async def _read_args(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return json_args(b"".join(chunks))


@router.get("/invocations/{invocation_id}", response_model=InvocationOut)
def get_invocation(invocation_id: str, who: Caller, svc: Svc) -> InvocationOut:
    """One invocation: its state, and its result or error (with traceback) once ended."""
    return InvocationOut.of(svc.functions.invocation(who, invocation_id))


@router.get("/invocations", response_model=InvocationPage)
def list_invocations(
    who: Caller,
    svc: Svc,
    project: Annotated[str | None, Query()] = None,
    function: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> InvocationPage:
    """Invocations of your projects, newest first."""
    items, next_cursor = svc.functions.invocations(
        who, project=project, function=function, state=state, cursor=cursor, limit=limit
    )
    return InvocationPage(items=[InvocationOut.of(i) for i in items], next_cursor=next_cursor)


@router.get("/function-pools")
def function_pools(who: Caller, svc: Svc) -> list[dict[str, Any]]:
    """The warm worker pools of this server for your projects: workers, busy, queued."""
    return svc.functions.pools(who)
