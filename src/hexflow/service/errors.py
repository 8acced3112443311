"""The one place that says which HTTP status and error code each hexflow error means.

Used by the API's exception handlers and by the audit log (the status of a refused
request). A ``ServiceError`` may carry ``status=`` in its fields to pick a code itself.
"""

from __future__ import annotations

from hexflow.data.errors import BackendError, DataNotFound, QuotaExceeded, TransferFailed
from hexflow.errors import (
    AuthError,
    Conflict,
    Forbidden,
    HexflowError,
    NotFound,
    RunNotFound,
    ServiceError,
    SpecError,
    StoreError,
    WorkflowFileError,
)


class OAuthError(AuthError):
    """A refused token request; ``fields['error']`` is the RFC 6749 error code."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        error: str = "invalid_client",
        **fields: object,
    ) -> None:
        super().__init__(message, hint=hint, error=error, **fields)


def status_of(exc: HexflowError) -> int:
    explicit = exc.fields.get("status")
    if isinstance(explicit, int):
        return explicit
    if isinstance(exc, OAuthError):
        return 401 if exc.fields.get("error") == "invalid_client" else 400
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound | RunNotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, DataNotFound):
        return 404
    if isinstance(exc, QuotaExceeded | TransferFailed):
        return 409
    if isinstance(exc, BackendError):
        return 502  # the storage behind a tier failed
    if isinstance(exc, WorkflowFileError):
        # Unreadable (syntax, encoding, empty): 400; readable but wrong at a field: 422.
        return 422 if exc.fields.get("field") else 400
    if isinstance(exc, SpecError):
        return 422
    if isinstance(exc, ServiceError):
        return 400
    if isinstance(exc, StoreError):
        return 503
    return 500


def code_of(exc: HexflowError) -> str:
    if isinstance(exc, OAuthError):
        return str(exc.fields.get("error") or "invalid_client")
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
        422: "invalid_workflow" if isinstance(exc, WorkflowFileError) else "invalid_request",
        429: "rate_limited",
        503: "store_unavailable",
    }.get(status_of(exc), "internal_error")


def outcome_of(exc: HexflowError) -> str:
    """The audit outcome of a refused request: denied (auth, scope, visibility) or error."""
    return "denied" if status_of(exc) in (401, 403, 404) else "error"
