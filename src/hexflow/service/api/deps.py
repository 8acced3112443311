"""Request dependencies: the Service of this app, the caller (Principal) and its address."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from hexflow.model.access import Scope
from hexflow.service.auth import Principal
from hexflow.service.core import Service

# Declares the bearer scheme in the OpenAPI document; the header is checked by ``caller``.
bearer = HTTPBearer(
    auto_error=False,
    description="An API token (hxt_...) or an access token from POST /oauth2/token",
)


def service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


async def app_service(request: Request) -> Service:
    """``service`` as a dependency that FastAPI runs on the event loop: it runs a plain
    function dependency on a worker thread, a hop (and a GIL hand-over) for nothing."""
    return cast(Service, request.app.state.service)


async def caller(
    request: Request,
    _scheme: object = Depends(bearer),
    svc: Service = Depends(app_service),
) -> Principal:
    header, now = request.headers.get("authorization"), svc.clock()
    who = svc.auth.cached(header, now=now)  # no I/O
    if who is None:  # the database, on a worker thread
        who = await run_in_threadpool(svc.auth.authenticate, header, now=now)
    return who


def source(request: Request) -> str | None:
    return request.client.host if request.client else None


# Scope checks as dependencies: they run before the request's body and parameters are
# validated, so a credential without the scope gets 403, not 422. async: no I/O, so no
# worker thread (FastAPI runs plain function dependencies on one).
async def reader(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.READ)
    return who


async def submitter(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.SUBMIT)
    return who


async def administrator(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.ADMIN)
    return who


ReaderCaller = Annotated[Principal, Depends(reader)]
SubmitterCaller = Annotated[Principal, Depends(submitter)]
AdminCaller = Annotated[Principal, Depends(administrator)]
