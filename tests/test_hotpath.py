"""The raw ASGI routes of the gateway (service/api/hotpath.py) answer exactly as the
FastAPI routes they stand in for: the same requests, good and bad, sent to a server whose
credential cache is on (the hot path answers) and to one whose cache is off (FastAPI
answers) get the same status, error code, field and headers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from hexflow.events import signed_headers
from tests import service_env
from tests.events_env import ALL, events_env, register
from tests.service_env import Env

db_url = service_env.db_url  # fixture


def server(tmp_path: Path, db_url: str, cache: float) -> AbstractContextManager[Env]:
    service = {"auth_cache_ttl": cache}
    return events_env(tmp_path, db_url, service=service, max_payload_bytes=2000, sync_wait=10)


@contextmanager
def _second_db(tmp_path: Path, db_url: str) -> Iterator[str]:
    if db_url.startswith("postgresql"):
        with contextmanager(service_env._postgres_db)() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'hot.db'}"


def _cases(env: Env) -> list[tuple[str, str, dict[str, Any], bytes, dict[str, str]]]:
    alice = env.auth("alice", "p1", ALL)
    reader = env.auth("alice", "p1", "read")
    bob = env.auth("bob", "p2", ALL)
    register(env, alice, "add", "tests.events_fns:add")
    register(env, bob, "add", "tests.events_fns:add")
    hook = env.client.post(
        "/api/v1/triggers", json={"kind": "webhook", "function": "add"}, headers=alice
    ).json()
    signed = signed_headers(hook["secret"], b'{"x":1}', timestamp=time.time(), nonce="n-1")
    forged = signed_headers("whs_nope", b'{"x":1}', timestamp=time.time(), nonce="n-2")
    js = {"Content-Type": "application/json"}
    url = "/api/v1/functions/add/invoke"
    return [
        ("sync", url, {}, b'{"x": 2, "y": 40}', alice),
        ("async", url, {"mode": "async"}, b'{"x": 2}', alice),
        ("wait", url, {"wait": "5", "version": "1"}, b'{"x": 2}', alice),
        ("empty body", "/api/v1/functions/add/invoke", {}, b"", alice),
        ("bad mode", url, {"mode": "later"}, b'{"x": 1}', alice),
        ("version 0", url, {"version": "0"}, b'{"x": 1}', alice),
        ("wait too long", url, {"wait": "301"}, b'{"x": 1}', alice),
        ("no such version", url, {"version": "7"}, b'{"x": 1}', alice),
        ("no such function", "/api/v1/functions/nope/invoke", {}, b"{}", alice),
        ("not JSON", url, {}, b"{x: 1", alice),
        ("bad argument", url, {}, b'{"x": "two"}', alice),
        ("missing argument", url, {}, b"{}", alice),
        ("too large", url, {}, b'{"x": 1, "pad": "' + b"x" * 3000 + b'"}', alice),
        ("other project", url, {"project": "p2"}, b'{"x": 1}', alice),
        ("no invoke scope", url, {}, b'{"x": 1}', reader),
        ("no token", url, {}, b'{"x": 1}', {}),
        ("forged token", url, {}, b'{"x": 1}', {"Authorization": "Bearer hxt_forged"}),
        ("hook", hook["hook_url"], {}, b'{"x":1}', {**signed, **js}),
        ("hook replayed", hook["hook_url"], {}, b'{"x":1}', {**signed, **js}),
        ("hook forged", hook["hook_url"], {}, b'{"x":1}', {**forged, **js}),
        ("hook unknown", "/api/v1/hooks/nope", {}, b'{"x":1}', {**signed, **js}),
        ("hook unsigned", hook["hook_url"], {}, b'{"x":1}', js),
    ]


def _answers(env: Env) -> dict[str, tuple[Any, ...]]:
    out = {}
    for name, url, params, body, headers in _cases(env):
        h = {"Content-Type": "application/json", **headers} if "invoke" in url else headers
        r = env.client.post(url, params=params, content=body, headers=h)
        got = r.json()
        shape = (
            r.status_code,
            got.get("error"),
            got.get("field"),
            got.get("state"),
            got.get("result"),
            "location" in r.headers,
            r.headers.get("retry-after"),
            r.headers.get("www-authenticate"),
        )
        out[name] = shape
    return out


def test_hot_routes_answer_as_the_fastapi_routes(tmp_path: Path, db_url: str) -> None:
    with server(tmp_path / "fastapi", db_url, cache=0.0) as env:
        slow = _answers(env)
        assert env.client.app.state.metrics.hot_path_calls == len(  # type: ignore[attr-defined]
            [n for n in slow if n.startswith("hook")]
        )  # with no credential cache, only the (token-less) hooks take the hot path
    with _second_db(tmp_path, db_url) as url2, server(tmp_path / "hot", url2, cache=60.0) as env:
        hot = _answers(env)
        calls = env.client.app.state.metrics.hot_path_calls  # type: ignore[attr-defined]
        assert calls >= 15, calls  # the invocations with a known credential took it
    assert hot == slow
    assert slow["sync"][0] == 200 and slow["sync"][4] == 42
    assert slow["async"][0] == 202 and slow["async"][5]
    assert slow["too large"][:2] == (413, "too_large")
    assert slow["bad argument"][:3] == (422, "invalid_request", "args.x")
    assert slow["other project"][0] in (403, 404) and slow["no invoke scope"][0] == 403
    assert slow["no token"][0] == 401 and slow["hook replayed"][0] == 401
