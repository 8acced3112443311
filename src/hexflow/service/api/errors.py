"""JSON error responses: every error, ours or the framework's, answers
``{"error", "message", "hint", "field"?, "line"?}`` with the status ``service.errors``
assigns. OAuth errors also carry RFC 6749's ``error_description``."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hexflow.errors import HexflowError
from hexflow.service.errors import OAuthError, code_of, status_of

log = logging.getLogger("hexflow.service")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def error_body(code: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message, "hint": hint}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def install(app: FastAPI) -> None:
    app.add_exception_handler(HexflowError, _hexflow_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)


async def _hexflow_error(_request: Request, exc: HexflowError) -> JSONResponse:
    return hexflow_error_response(exc)


def hexflow_error_response(exc: HexflowError) -> JSONResponse:
    """The JSON error answer of ``exc`` (also used by the raw ASGI routes of hotpath.py)."""
    status = status_of(exc)
    extra: dict[str, Any] = {"field": exc.fields.get("field"), "line": exc.fields.get("line")}
    if isinstance(exc, OAuthError):
        extra["error_description"] = exc.message
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    retry_after = exc.fields.get("retry_after")
    if isinstance(retry_after, int | float):  # 429 (rate limits), 503: when to try again
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    if status >= 500:
        log.error("request failed: %s", exc)
    body = error_body(code_of(exc), exc.message, exc.hint, **extra)
    return JSONResponse(body, status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ())]
    field = ".".join(loc) or None
    name = loc[-1] if loc else "request"
    message = f"{name}: {first.get('msg', 'invalid value')}"
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg")}
        for e in errors
    ]
    hint = "see the API documentation at /docs for what this route takes"
    return JSONResponse(
        error_body("invalid_request", message, hint, field=field, details=details),
        status_code=422,
    )


async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    code = _CODES.get(exc.status_code, "error")
    hint = "GET /docs lists the routes" if exc.status_code in (404, 405) else None
    return JSONResponse(
        error_body(code, str(exc.detail), hint),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    return internal_error_response(exc)


def internal_error_response(exc: Exception) -> JSONResponse:
    log.exception("internal error", exc_info=exc)
    return JSONResponse(
        error_body(
            "internal_error",
            f"internal error: {type(exc).__name__}",
            "this is a hexflow bug; the server log has the traceback",
        ),
        status_code=500,
    )
