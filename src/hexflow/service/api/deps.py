"""Request dependencies: the Service of this app, the caller (Principal) and its address."""

from __future__ import annotations

from typing import cast

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from hexflow.service.auth import Principal
from hexflow.service.core import Service

# Declares the bearer scheme in the OpenAPI document; the header is checked by ``caller``.
bearer = HTTPBearer(
    auto_error=False,
    description="An API token (hxt_...) or an access token from POST /oauth2/token",
)


def service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


def caller(
    request: Request,
    _scheme: object = Depends(bearer),
    svc: Service = Depends(service),
) -> Principal:
    return svc.auth.authenticate(request.headers.get("authorization"), now=svc.clock())


def source(request: Request) -> str | None:
    return request.client.host if request.client else None
