"""The SDK's transport: one httpx client, bounded retries of what is safe to retry, and
the server's JSON errors turned into hexflow's exceptions, with its message and hint.

Retried: connection failures and timeouts, 502/503/504, and (for submissions, which carry
an Idempotency-Key, so a retry never makes a second run) 409 "still being processed".
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from hexflow.errors import (
    AuthError,
    Conflict,
    Forbidden,
    HexflowError,
    NotFound,
    ServiceError,
    WorkflowFileError,
)

RETRY_STATUS = frozenset({502, 503, 504})


class Transport:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        retries: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "hexflow-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.retries = max(0, retries)
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry_conflict: bool = False,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """The JSON answer of a request, after retries; errors raise hexflow exceptions.

        ``idempotent=False`` (a function call, a new trigger: doing it twice is not doing
        it once) retries only what never reached the server: a refused connection.
        ``timeout`` overrides the client's for this request (a call that waits long)."""
        delay = 0.2
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.request(
                    method, path, params=params, content=content, headers=headers, **extra
                )
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if last or not (idempotent or unsent):
                    raise unreachable(self.url, exc) from None
            else:
                again = (idempotent and response.status_code in RETRY_STATUS) or (
                    retry_conflict and response.status_code == 409
                )
                if not again or last:
                    if response.status_code >= 400:
                        raise error_of(response)
                    return response.json() if response.content else None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def stream(
        self, path: str, *, params: Mapping[str, Any] | None = None, read_timeout: float = 60.0
    ) -> Iterator[httpx.Response]:
        timeout = httpx.Timeout(30.0, read=read_timeout)
        try:
            with self.http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_of(response)
                yield response
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None


def unreachable(url: str, exc: Exception) -> ServiceError:
    return ServiceError(
        f"cannot reach the hexflow server at {url}: {type(exc).__name__}: {exc}",
        hint="check the URL (--server, HEXFLOW_SERVER) and that `hexflow server` runs there",
        url=url,
    )


def error_of(response: httpx.Response) -> HexflowError:
    """The exception for an error answer, with the server's message, hint and field."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": response.text[:500] or response.reason_phrase}
    status = response.status_code
    message = str(body.get("message") or body.get("error_description") or body.get("error"))
    fields = {
        "status": status,
        "code": body.get("error"),
        "field": body.get("field"),
        "line": body.get("line"),
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    hint = body.get("hint")
    if body.get("error") == "invalid_workflow":
        return WorkflowFileError(message, hint=hint, **fields)
    cls: type[ServiceError] = {
        401: AuthError,
        403: Forbidden,
        404: NotFound,
        409: Conflict,
    }.get(status, ServiceError)
    return cls(message, hint=hint, **fields)
