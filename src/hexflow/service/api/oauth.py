"""POST /oauth2/token: OAuth2 client credentials with private_key_jwt (sfapi_client's flow)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse

from hexflow.service.api.deps import service, source
from hexflow.service.api.models import OAuthErrorOut, TokenOut
from hexflow.service.core import Service

router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/oauth2/token",
    response_model=TokenOut,
    responses={
        400: {"model": OAuthErrorOut, "description": "bad grant or request"},
        401: {"model": OAuthErrorOut, "description": "client authentication failed"},
    },
)
def token(
    request: Request,
    svc: Annotated[Service, Depends(service)],
    grant_type: Annotated[str | None, Form(description="client_credentials")] = None,
    client_assertion_type: Annotated[
        str | None, Form(description="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    ] = None,
    client_assertion: Annotated[
        str | None, Form(description="JWT: iss=sub=client_id, aud=this URL, exp, jti")
    ] = None,
) -> JSONResponse:
    """Exchange a signed client assertion (RFC 7523) for a short-lived access token."""
    audiences = svc.config.token_urls or (str(request.url).split("?", 1)[0],)
    body = svc.oauth.token(
        grant_type=grant_type,
        assertion_type=client_assertion_type,
        assertion=client_assertion,
        audiences=audiences,
        source=source(request),
    )
    return JSONResponse(body, headers=_NO_STORE)
