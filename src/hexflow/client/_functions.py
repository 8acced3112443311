"""The SDK's functions API: register functions, invoke them (synchronously, or as an
``Invocation`` handle to wait on), read invocations, manage triggers, send signed
webhooks and read the event log after an offset.

Calls are not retried once they may have reached the server (a call twice is not a call
once); reads are. A failed or timed-out function raises ``FunctionFailed`` carrying the
remote traceback (in ``fields["traceback"]`` and as a note of the exception).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hexflow.client._handle import RemoteHandle
from hexflow.client._hooks import signed_headers
from hexflow.errors import FunctionFailed, SpecError
from hexflow.model.resources import parse_duration, parse_memory

if TYPE_CHECKING:
    from hexflow.client._http import Transport

TERMINAL_INVOCATION = frozenset({"succeeded", "failed", "timed_out"})
MAX_SERVER_WAIT = 300.0  # the most a synchronous call may ask the server to wait
_JSON = {"Content-Type": "application/json"}


def _seg(value: str, what: str) -> str:
    """``value`` as one path segment (so a name can never reach another route)."""
    if not isinstance(value, str) or not value:
        raise SpecError(f"{what} must be a non-empty string, got {value!r}", field=what)
    return quote(value, safe="")


def _json_body(value: Any, field: str) -> bytes:
    try:
        return json.dumps(value, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"{field} cannot be sent as JSON: {exc}",
            hint="pass JSON values only: dicts, lists, strings, numbers, booleans, None",
            field=field,
        ) from None


def _args_body(args: Mapping[str, Any] | None) -> bytes:
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise SpecError(
            f"a function's arguments are a mapping of name -> value, not a {type(args).__name__}",
            hint="e.g. client.invoke('add', {'x': 1, 'y': 2})",
            field="args",
        )
    return _json_body(dict(args), "args")


def _wait_seconds(timeout: float | None, field: str = "timeout") -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise SpecError(f"{field} must be a number of seconds > 0, got {timeout!r}", field=field)
    return float(timeout)


def invocation_error(info: Mapping[str, Any]) -> FunctionFailed:
    """The exception for an invocation that ended without a result."""
    inv_id, traceback = info.get("id"), info.get("traceback")
    err = FunctionFailed(
        f"function {info.get('function')!r} (version {info.get('version')}) "
        f"{info.get('state')}: {info.get('error') or 'no error message'}",
        hint=f"client.get_invocation({inv_id!r}) shows its arguments and traceback",
        invocation=inv_id,
        function=info.get("function"),
        state=info.get("state"),
        error=info.get("error"),
        traceback=traceback,
    )
    if traceback:
        err.add_note(f"remote traceback (invocation {inv_id}):\n{traceback}")
    return err


class Invocation(RemoteHandle):
    """A call of a function on the server. ``info`` is its latest JSON view."""

    TERMINAL = TERMINAL_INVOCATION
    FIRST_POLL, LONGEST_POLL = 0.02, 0.5

    def __init__(self, client: FunctionsAPI, info: dict[str, Any]) -> None:
        super().__init__(info)
        self.client = client

    def __repr__(self) -> str:
        return f"<Invocation {self.id} {self.function} {self.state}>"

    @property
    def function(self) -> str:
        return str(self.info["function"])

    def _fetch(self) -> dict[str, Any]:
        return self.client.get_invocation(self.id)

    def _what(self) -> str:
        return f"invocation {self.id} of {self.function}"

    def wait(self, timeout: float | None = None) -> Invocation:
        """Block until the invocation has ended (``TimeoutError`` after ``timeout`` s)."""
        return super().wait(_wait_seconds(timeout))

    def result(self, timeout: float | None = None) -> Any:
        """The function's return value, waiting for it; ``FunctionFailed`` if it failed
        or timed out on the server (with the remote traceback)."""
        self.wait(timeout)
        if self.ok:
            return self.info.get("result")
        raise invocation_error(self.info)

    def exception(self, timeout: float | None = None) -> FunctionFailed | None:
        self.wait(timeout)
        return None if self.ok else invocation_error(self.info)


@dataclass(frozen=True)
class EventPage:
    """Events after an offset, oldest first; pass ``next_after`` back to read on."""

    items: list[dict[str, Any]]
    next_after: int


class FunctionsAPI:
    """Functions, invocations, triggers and the event log; part of ``hexflow.Client``."""

    _t: Transport
    project: str | None

    if TYPE_CHECKING:

        def _pages(
            self, path: str, params: Mapping[str, Any], limit: int | None, *, page: int
        ) -> list[dict[str, Any]]: ...

    def _project_params(self, project: str | None, **more: Any) -> dict[str, Any]:
        params = {k: v for k, v in more.items() if v is not None}
        if project or self.project:
            params["project"] = project or self.project
        return params

    # ------------------------------------------------------------------ functions
    def register_function(
        self,
        name: str,
        *,
        import_path: str | Callable[..., Any] | None = None,
        source: str | None = None,
        entrypoint: str | None = None,
        env: Mapping[str, str] | None = None,
        cpus: float = 1.0,
        memory: int | str | None = None,
        timeout: float | str = 60.0,
        min_workers: int = 1,
        max_workers: int = 4,
        project: str | None = None,
        qos: str | None = None,
    ) -> dict[str, Any]:
        """Register ``name`` (a new version if it exists) by import path (``"pkg.mod:fn"``,
        or a module-level function importable where the server runs) or by ``source``
        text that defines it (``entrypoint``: its name, default ``name``). ``memory``
        takes bytes or ``"512M"``; ``timeout`` seconds or ``"5m"``. Returns the function
        with its JSON Schema of arguments (``args_schema``)."""
        if callable(import_path):
            import_path = _import_path_of(import_path)
        if (import_path is None) == (source is None):
            raise SpecError(
                "register a function by import_path or by source (one of them)",
                hint="import_path='pkg.module:function', or source='def f(x: int): ...'",
                field="import_path" if import_path is None else "source",
            )
        if env is not None and not isinstance(env, Mapping):
            raise SpecError("env: a mapping of variable -> value", field="env")
        body = {
            "name": name,
            "import_path": import_path,
            "source": source,
            "entrypoint": entrypoint,
            "env": dict(env or {}),
            "cpus": cpus,
            "memory": None if memory is None else parse_memory(memory),
            "timeout": parse_duration(timeout, "timeout"),
            "min_workers": min_workers,
            "max_workers": max_workers,
            "qos": qos,
        }
        info = self._t.request(
            "POST",
            "/api/v1/functions",
            params=self._project_params(project),
            content=_json_body(body, "function"),
            headers=_JSON,
            idempotent=False,
        )
        return dict(info)

    def functions(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """The newest version of each function of your projects (``project``: only it)."""
        params = {"project": project} if project else None
        return list(self._t.request("GET", "/api/v1/functions", params=params)["items"])

    def function(
        self, name: str, *, version: int | None = None, project: str | None = None
    ) -> dict[str, Any]:
        path = f"/api/v1/functions/{_seg(name, 'name')}"
        params = self._project_params(project, version=version)
        return dict(self._t.request("GET", path, params=params))

    def function_pools(self) -> list[dict[str, Any]]:
        """The server's warm worker pools for your projects: workers, busy, queued."""
        return list(self._t.request("GET", "/api/v1/function-pools"))

    # ------------------------------------------------------------------ invoking
    def invoke(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        project: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call function ``name`` with ``args`` and return its result. Raises
        ``FunctionFailed`` (with the remote traceback) if it failed or timed out, and
        ``TimeoutError`` if it has not ended after ``timeout`` seconds (it goes on: see
        ``invocations()``). Arguments that do not fit its schema: ``ServiceError``
        (status 422) naming the field."""
        wait = _wait_seconds(timeout)
        deadline = None if wait is None else time.monotonic() + wait
        server_wait = min(wait or MAX_SERVER_WAIT, MAX_SERVER_WAIT)
        info = self._call(name, args, version, project, mode="sync", wait=server_wait)
        handle = Invocation(self, info)
        if handle.state not in TERMINAL_INVOCATION:  # the server's wait ran out first
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            handle.wait(left)
        return handle.result()

    def invoke_async(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        project: str | None = None,
        callback: str | None = None,
    ) -> Invocation:
        """Queue a call of ``name`` and return its handle at once (``.wait()``,
        ``.result()``). With ``callback`` (an http(s) URL the server allows), the server
        also POSTs the invocation there when it ends, signed with the project's callback
        secret (``callback_secret``; verify with ``hexflow.verify_callback``)."""
        if callback is not None and (not isinstance(callback, str) or not callback):
            raise SpecError(f"callback must be a URL, got {callback!r}", field="callback")
        info = self._call(name, args, version, project, mode="async", callback=callback)
        return Invocation(self, info)

    def callback_secret(self, project: str | None = None) -> str:
        """The secret the server signs the project's invocation callbacks with."""
        info = self._t.request(
            "GET", "/api/v1/callbacks/secret", params=self._project_params(project)
        )
        return str(info["secret"])

    def _call(
        self,
        name: str,
        args: Mapping[str, Any] | None,
        version: int | None,
        project: str | None,
        *,
        mode: str,
        wait: float | None = None,
        callback: str | None = None,
    ) -> dict[str, Any]:
        path = f"/api/v1/functions/{_seg(name, 'name')}/invoke"
        params = self._project_params(
            project, version=version, mode=mode, wait=wait, callback=callback
        )
        return dict(
            self._t.request(
                "POST",
                path,
                params=params,
                content=_args_body(args),
                headers=_JSON,
                idempotent=False,
                timeout=None if wait is None else wait + 30.0,
            )
        )

    def get_invocation(self, invocation_id: str) -> dict[str, Any]:
        path = f"/api/v1/invocations/{_seg(invocation_id, 'invocation')}"
        return dict(self._t.request("GET", path))

    def invocation(self, invocation_id: str) -> Invocation:
        return Invocation(self, self.get_invocation(invocation_id))

    def invocations(
        self,
        *,
        project: str | None = None,
        function: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Invocations of your projects, newest first (every page, up to ``limit``)."""
        params = {"project": project, "function": function, "state": state}
        return self._pages("/api/v1/invocations", params, limit, page=min(limit or 500, 500))

    # ------------------------------------------------------------------ triggers
    def create_trigger(
        self,
        kind: str,
        function: str = "",
        *,
        workflow: str | None = None,
        config: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        name: str = "",
        project: str | None = None,
    ) -> dict[str, Any]:
        """A trigger that calls ``function`` — or submits ``workflow`` (a YAML workflow's
        text; its params from ``args`` and the event's fields of the same names) —:
        ``kind`` webhook, file, schedule, event or dataset, with its ``config``
        (docs/events.md). A webhook's ``secret`` and ``hook_url`` are in this answer only:
        keep them for ``send_webhook``."""
        for field, value in (("config", config), ("args", args)):
            if value is not None and not isinstance(value, Mapping):
                raise SpecError(f"{field} must be a mapping", field=field)
        body = {
            "name": name,
            "kind": kind,
            "function": function,
            "config": dict(config or {}),
            "args": dict(args or {}),
        }
        if workflow is not None:
            body["workflow"] = workflow
        return dict(
            self._t.request(
                "POST",
                "/api/v1/triggers",
                params=self._project_params(project),
                content=_json_body(body, "trigger"),
                headers=_JSON,
                idempotent=False,
            )
        )

    def triggers(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """Your projects' triggers, with how often and when they last fired."""
        params = {"project": project} if project else None
        return list(self._t.request("GET", "/api/v1/triggers", params=params)["items"])

    def delete_trigger(self, trigger_id: str) -> dict[str, Any]:
        path = f"/api/v1/triggers/{_seg(trigger_id, 'trigger')}"
        return dict(self._t.request("DELETE", path, idempotent=False))

    def send_webhook(
        self, hook: Mapping[str, Any] | str, payload: Any, *, secret: str | None = None
    ) -> dict[str, Any]:
        """POST a signed webhook: ``hook`` is what ``create_trigger`` returned (its
        ``hook_url`` and ``secret``), or a hook URL path with ``secret``. ``payload``:
        bytes as they are, anything else as JSON. Returns ``{"seq": ..., "trigger": ...}``:
        the event is in the log when this returns."""
        if isinstance(hook, Mapping):
            url, secret = hook.get("hook_url"), secret or hook.get("secret")
        else:
            url = hook
        if not isinstance(url, str) or not url.startswith("/api/v1/hooks/"):
            raise SpecError(
                f"not a webhook URL: {url!r}",
                hint="pass the trigger create_trigger returned, or its hook_url",
                field="hook",
            )
        if not isinstance(secret, str) or not secret:
            raise SpecError(
                "a webhook needs its secret to sign the request",
                hint="the secret is in create_trigger's answer only",
                field="secret",
            )
        if isinstance(payload, bytes):
            body, media = payload, "application/octet-stream"
        else:
            body, media = _json_body(payload, "payload"), "application/json"
        headers = {"Content-Type": media, **signed_headers(secret, body)}
        return dict(self._t.request("POST", url, content=body, headers=headers, idempotent=False))

    # ------------------------------------------------------------------ the event log
    def read_events(
        self,
        after: int = 0,
        *,
        project: str | None = None,
        limit: int = 100,
        wait: float = 0.0,
    ) -> EventPage:
        """Logged events of your projects after seq ``after``, oldest first (``wait``:
        long-poll up to that many seconds for the first one)."""
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise SpecError(f"after must be a seq >= 0, got {after!r}", field="after")
        params: dict[str, Any] = {"after": after, "limit": limit, "wait": wait}
        if project:
            params["project"] = project
        timeout = wait + 30.0 if isinstance(wait, int | float) and wait > 0 else None
        body = self._t.request("GET", "/api/v1/events", params=params, timeout=timeout)
        return EventPage(items=list(body["items"]), next_after=int(body["next_after"]))

    def iter_events(
        self, after: int = 0, *, project: str | None = None, follow: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every event after ``after``, page by page; ``follow``: then wait for new ones
        (long polls) until the caller stops iterating."""
        while True:
            page = self.read_events(after, project=project, limit=1000, wait=20 if follow else 0)
            yield from page.items
            after = page.next_after
            if not page.items and not follow:
                return


def _import_path_of(fn: Callable[..., Any]) -> str:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "." in qualname or "<" in qualname:
        raise SpecError(
            f"{fn!r} has no import path the server can use",
            hint="register a module-level function of an importable module, or pass its source",
            field="import_path",
        )
    return f"{module}:{qualname}"
