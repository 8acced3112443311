"""/api/v1/functions and /api/v1/invocations: register, list and invoke functions; poll
invocations. ``invoke`` is the gateway's hot path: it stays on the event loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from hexflow.events.functions.callbacks import CALLBACK_SECRET_HEADER
from hexflow.events.functions.registry import Registration
from hexflow.service.api.deps import app_service, caller, service, source
from hexflow.service.api.events_models import (
    FunctionIn,
    FunctionList,
    FunctionOut,
    InvocationOut,
    InvocationPage,
    UploadDone,
    UploadIn,
    UploadOut,
)
from hexflow.service.api.hotpath import json_args, read_limited
from hexflow.service.api.models import ERRORS
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["functions"], responses=ERRORS)
uploads = APIRouter(tags=["functions"])  # public: the URL's signed token is the credential
UPLOAD_PATH = "/api/v1/uploads/{token}"

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
    callback: Annotated[
        str | None,
        Query(
            max_length=2048,
            description="an http(s) URL the server POSTs the invocation to when it ends, "
            "signed with the project's callback secret (the X-Hexflow-Callback-Secret "
            "header of this answer); only hosts the server allows",
        ),
    ] = None,
) -> JSONResponse:
    """Call a function: 200 with the result when it ends within ``wait`` (sync), else 202
    with the invocation id (poll ``GET /api/v1/invocations/{id}``, or pass ``callback``).
    A failed function is a 200 too, with ``state`` failed, its error and traceback."""
    if callback is not None:
        svc.functions.check_callback(callback)
    args = await _read_args(request, svc.functions.max_payload)
    fn = svc.functions.prepare(who, name, project, version, args)
    limit = wait if wait is not None else svc.config.events.sync_wait
    called = await svc.functions.invoke(
        who, fn, args, wait=limit if mode == "sync" else None, callback=callback
    )
    body = InvocationOut.of(called.invocation).model_dump()
    headers = {}
    if callback is not None:
        headers[CALLBACK_SECRET_HEADER] = svc.functions.callback_secret(fn.project)
    if called.done:
        return JSONResponse(body, headers=headers)
    headers["Location"] = f"/api/v1/invocations/{called.invocation.id}"
    return JSONResponse(body, status_code=202, headers=headers)


async def _read_args(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    return json_args(await read_limited(request.stream(), limit, declared))


@router.post("/functions/{name}/uploads", status_code=201, response_model=UploadOut)
def create_upload(
    name: str, body: UploadIn, request: Request, who: Caller, svc: Svc, project: Project = None
) -> UploadOut:
    """A pre-signed upload for data over the payload limit: PUT ``size`` bytes to ``url``
    (with ``headers``, no bearer token) before ``expires_at``, then pass ``ref`` as an
    argument; the function reads it with ``ctx.read_bytes(ref)``."""
    out = svc.functions.create_upload(
        who, name, project, size=body.size, tier=body.tier, base_url=str(request.base_url)
    )
    return UploadOut(**out)


@uploads.put(
    UPLOAD_PATH,
    status_code=201,
    response_model=UploadDone,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the bytes, exactly the size asked for",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
    responses={
        401: {"description": "a forged or altered upload token"},
        409: {"description": "this upload was made already"},
        410: {"description": "the upload URL has expired"},
        413: {"description": "more bytes than the upload takes"},
    },
)
async def put_upload(token: str, request: Request, svc: LoopSvc) -> UploadDone:
    """The target of a pre-signed upload to a POSIX tier: the token in the URL is the
    credential (signed by the server, expiring, for one upload of one size)."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    done = await svc.functions.receive_upload(token, size, request.stream())
    return UploadDone(**done)


@router.get("/callbacks/secret")
def callback_secret(who: Caller, svc: Svc, project: Project = None) -> dict[str, str]:
    """The secret the server signs the project's invocation callbacks with (HMAC-SHA256,
    the webhook scheme: X-Hexflow-Timestamp, X-Hexflow-Nonce, X-Hexflow-Signature)."""
    name, secret = svc.functions.callback_secret_for(who, project)
    return {"project": name, "secret": secret}


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
