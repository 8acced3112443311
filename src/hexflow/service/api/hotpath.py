"""HotPaths: the gateway's two hot routes answered as raw ASGI, ahead of FastAPI's routing.

``POST /api/v1/functions/{name}/invoke`` and ``POST /api/v1/hooks/{trigger_id}`` take
thousands of calls a second (issue 7). Through FastAPI each call pays route matching over
every route of the API, dependency solving and response-model validation: about two
thirds of the server's CPU per call, more than the invocation itself. Here the same
service calls (the same authentication, scopes, project checks, rate limits, payload limit
and error bodies) are made directly.

Anything this module is not sure to answer exactly as the FastAPI routes would — a
credential not yet in the authentication cache, an unknown, repeated or invalid query
parameter, a service not started — falls through to those routes untouched (nothing has
been read from the request by then). The routes stay the documented ones (OpenAPI).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from hexflow.errors import HexflowError, ServiceError
from hexflow.service.api.errors import hexflow_error_response, internal_error_response
from hexflow.service.api.events_models import InvocationOut
from hexflow.service.api.metrics import Metrics
from hexflow.service.core import Service

_INVOKE_PREFIX, _INVOKE_SUFFIX = "/api/v1/functions/", "/invoke"
_HOOK_PREFIX = "/api/v1/hooks/"
INVOKE_ROUTE = "/api/v1/functions/{name}/invoke"
HOOK_ROUTE = "/api/v1/hooks/{trigger_id}"
_JSON = (b"content-type", b"application/json")


class HotPaths:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_INVOKE_PREFIX) and path.endswith(_INVOKE_SUFFIX):
                name = path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)]
                if name and "/" not in name and await self._invoke(scope, receive, send, name):
                    return
            elif path.startswith(_HOOK_PREFIX):
                trigger_id = path[len(_HOOK_PREFIX) :]
                hook = trigger_id and "/" not in trigger_id
                if hook and await self._hook(scope, receive, send, trigger_id):
                    return
        await self.app(scope, receive, send)

    # ------------------------------------------------------------------ routes
    async def _invoke(self, scope: Scope, receive: Receive, send: Send, name: str) -> bool:
        svc = _service(scope)
        query = _invoke_query(scope["query_string"])
        if svc is None or query is None:
            return False
        header = _header(scope, b"authorization")
        who = svc.auth.cached(header, now=svc.clock())
        if who is None:  # FastAPI's route reads the database (and caches what it finds)
            return False
        start = time.perf_counter()
        project, version, mode, wait = query
        try:
            args = json_args(await read_body(scope, receive, svc.functions.max_payload))
            fn = svc.functions.prepare(who, name, project, version, args)
            limit = wait if wait is not None else svc.config.events.sync_wait
            called = await svc.functions.invoke(
                who, fn, args, wait=limit if mode == "sync" else None
            )
            body = InvocationOut.of(called.invocation).model_dump_json().encode()
            headers = [_JSON]
            status = 200
            if not called.done:
                status = 202
                location = f"/api/v1/invocations/{called.invocation.id}"
                headers.append((b"location", location.encode()))
            await _answer(send, status, body, headers)
        except Exception as exc:  # noqa: BLE001 - answered as the FastAPI handlers would
            status = await _error(scope, receive, send, exc)
        self._count(INVOKE_ROUTE, status, start)
        return True

    async def _hook(self, scope: Scope, receive: Receive, send: Send, trigger_id: str) -> bool:
        svc = _service(scope)
        if svc is None:
            return False
        start = time.perf_counter()
        try:
            body = await read_body(scope, receive, svc.functions.max_payload)
            event = await svc.events.triggers.webhook(trigger_id, Headers(scope=scope), body)
            answer = {"seq": event.seq, "trigger": trigger_id}
            await _answer(send, 202, json.dumps(answer).encode(), [_JSON])
            status = 202
        except Exception as exc:  # noqa: BLE001 - answered as the FastAPI handlers would
            status = await _error(scope, receive, send, exc)
        self._count(HOOK_ROUTE, status, start)
        return True

    def _count(self, route: str, status: int, start: float) -> None:
        self.metrics.hot_path_calls += 1
        self.metrics.requests.labels("POST", route, str(status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - start)


# ---------------------------------------------------------------------- helpers
def _service(scope: Scope) -> Service | None:
    app = scope.get("app")
    state = getattr(app, "state", None)
    return getattr(state, "service", None) if state is not None else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _invoke_query(raw: bytes) -> tuple[str | None, int | None, str, float | None] | None:
    """(project, version, mode, wait) when every parameter is known, given once and valid
    (as the route declares them); else None: the FastAPI route answers (e.g. its 422)."""
    if not raw:
        return None, None, "sync", None
    seen: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key in seen or key not in ("project", "version", "mode", "wait"):
            return None
        seen[key] = value
    mode = seen.get("mode", "sync")
    if mode not in ("sync", "async"):
        return None
    version = wait = None
    try:
        if "version" in seen:
            version = int(seen["version"])
            if version < 1:
                return None
        if "wait" in seen:
            wait = float(seen["wait"])
            if not (0 < wait <= 300) or math.isnan(wait):
                return None
    except ValueError:
        return None
    return seen.get("project"), version, mode, wait


async def read_limited(
    chunks: AsyncIterator[bytes], limit: int, declared: str | None = None
) -> bytes:
    """A request body from its ``chunks``, refused (413) past ``limit`` bytes, declared
    (``Content-Length``) or sent. Every route that reads a body itself reads it here."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The body of a request answered here, from the ASGI ``receive``."""
    return await read_limited(_received(receive), limit, _header(scope, b"content-length"))


async def _received(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ServiceError("the client went away before its request's body arrived")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def json_args(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ServiceError(
            f"the arguments are not valid JSON: {exc}",
            hint='send a JSON object, e.g. {"x": 1}',
            status=422,
            field="body",
        ) from None


def too_large(size: int, limit: int) -> ServiceError:
    return ServiceError(
        f"the arguments are over {limit} bytes ({size} seen)",
        hint="pass large data by reference (a path or dataset), or raise the server's limit",
        status=413,
    )


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> int:
    if isinstance(exc, HexflowError):
        response = hexflow_error_response(exc)
    else:
        response = internal_error_response(exc)
    await response(scope, receive, send)
    return response.status_code
