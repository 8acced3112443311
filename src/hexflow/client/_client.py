"""``hexflow.Client``: submit workflows to a hexflow server and follow them.

Every submission carries an ``Idempotency-Key`` (a fresh UUID unless given), kept across
its retries, so a retried request never creates a second run. Errors are hexflow's
exceptions (``AuthError``, ``Forbidden``, ``NotFound``, ``WorkflowFileError``...) with the
server's message and hint.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from hexflow.client._functions import FunctionsAPI
from hexflow.client._http import Transport
from hexflow.client._runs import RemoteFuture, RemoteRun
from hexflow.client._sse import Event, parse_events
from hexflow.errors import SpecError
from hexflow.flow import wire

_TYPES = {".yaml": "application/yaml", ".yml": "application/yaml", ".json": "application/json"}


class Client(FunctionsAPI):
    """A connection to ``hexflow server`` at ``url`` with a bearer ``token`` (an API token
    from ``hexflow admin token create``, or an OAuth access token). Functions, triggers
    and the event log: see ``FunctionsAPI``."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        project: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project  # default project of submissions (None: the server picks)
        self._t = Transport(url, token, timeout=timeout, retries=retries, transport=transport)

    def __repr__(self) -> str:
        return f"<hexflow.Client {self.url}>"

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ submit
    def submit(
        self,
        workflow: Any,
        *,
        params: Mapping[str, Any] | None = None,
        project: str | None = None,
        idempotency_key: str | None = None,
    ) -> RemoteRun:
        """Submit a workflow: a ``hexflow.Workflow`` (its Python tasks serialized), a path
        to a .yaml/.yml/.json file, a dict (JSON document) or YAML text."""
        if hasattr(workflow, "specs") and hasattr(workflow, "name"):
            if params:
                raise SpecError("a Python workflow takes no params", field="params")
            if not workflow.specs:
                raise SpecError(f"workflow {workflow.name!r} has no tasks")
            body = wire.encode_workflow(workflow.name, workflow.specs.values())
            media = wire.MEDIA_TYPE
        elif isinstance(workflow, Path) or (
            isinstance(workflow, str) and Path(workflow).suffix.lower() in _TYPES
        ):
            path = Path(workflow)
            media = _TYPES.get(path.suffix.lower(), "")
            if not media:
                raise SpecError(f"{path}: not a .yaml, .yml or .json workflow", field="path")
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise SpecError(f"{path}: {exc.strerror}", field="path") from None
        elif isinstance(workflow, Mapping):
            body, media = json.dumps(workflow).encode(), "application/json"
        elif isinstance(workflow, str | bytes):
            body = workflow.encode() if isinstance(workflow, str) else workflow
            media = "application/yaml"
        else:
            raise SpecError(
                f"cannot submit a {type(workflow).__name__}",
                hint="pass a hexflow.Workflow, a workflow file path, a dict or YAML text",
            )
        return self._submit(body, media, params, project, idempotency_key)

    def submit_workflow(self, workflow: Any, **kw: Any) -> RemoteRun:
        """What ``Workflow.submit(client)`` calls."""
        return self.submit(workflow, **kw)

    def _submit(
        self,
        body: bytes,
        media: str,
        params: Mapping[str, Any] | None,
        project: str | None,
        key: str | None,
    ) -> RemoteRun:
        query: list[tuple[str, Any]] = [("param", f"{k}={v}") for k, v in (params or {}).items()]
        if project or self.project:
            query.append(("project", project or self.project))
        headers = {"Content-Type": media, "Idempotency-Key": key or str(uuid.uuid4())}
        info = self._t.request(
            "POST", "/api/v1/runs", params=query, content=body, headers=headers,
            retry_conflict=True,
        )  # fmt: skip
        return RemoteRun(self, info)

    # ------------------------------------------------------------------ runs
    def run(self, run_id: str) -> RemoteRun:
        return RemoteRun(self, self.get_run(run_id))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._t.request("GET", f"/api/v1/runs/{run_id}"))

    def runs(
        self,
        *,
        project: str | None = None,
        state: str | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs of your projects, newest first (every page, up to ``limit``)."""
        params = {"project": project, "state": state, "name": name}
        return self._pages("/api/v1/runs", params, limit, page=min(limit or 500, 500))

    def cancel(self, run_id: str) -> dict[str, Any]:
        return dict(self._t.request("POST", f"/api/v1/runs/{run_id}/cancel"))

    # ------------------------------------------------------------------ tasks
    def tasks(self, run_id: str, *, state: str | None = None) -> list[dict[str, Any]]:
        return self._pages(f"/api/v1/runs/{run_id}/tasks", {"state": state}, None, page=1000)

    def task(self, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self._t.request("GET", f"/api/v1/runs/{run_id}/tasks/{task_id}"))

    def cancel_task(self, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self._t.request("POST", f"/api/v1/runs/{run_id}/tasks/{task_id}/cancel"))

    def task_result(self, run_id: str, task_id: str) -> dict[str, Any]:
        """The raw outcome of an ended task (``Conflict`` while it has not ended)."""
        path = f"/api/v1/runs/{run_id}/tasks/{task_id}/result"
        return dict(self._t.request("GET", path))

    def future(self, run_id: str, task_id: str) -> RemoteFuture:
        return RemoteFuture(self, run_id, task_id)

    # ------------------------------------------------------------------ logs, events
    def logs(self, run_id: str, task_id: str, *, attempt: int | None = None) -> dict[str, Any]:
        """A task's stdout and stderr (``truncated`` when only the tail came)."""
        params = {"attempt": attempt} if attempt else None
        path = f"/api/v1/runs/{run_id}/tasks/{task_id}/logs"
        return dict(self._t.request("GET", path, params=params))

    def run_logs(self, run_id: str) -> list[dict[str, Any]]:
        """The latest logs of every task of a run."""
        return self._pages(f"/api/v1/runs/{run_id}/logs", {}, None, page=100)

    def follow_logs(
        self, run_id: str, task_id: str, *, attempt: int | None = None
    ) -> Iterator[Event]:
        """``stdout``/``stderr`` events (``data["text"]``) as the task writes, until ``end``."""
        params: dict[str, Any] = {"follow": "true"}
        if attempt:
            params["attempt"] = attempt
        yield from self._events(f"/api/v1/runs/{run_id}/tasks/{task_id}/logs", params)

    def events(self, run_id: str) -> Iterator[Event]:
        """The run's ``task`` and ``run`` state changes (a snapshot first), until ``end``."""
        yield from self._events(f"/api/v1/runs/{run_id}/events", {})

    def _events(self, path: str, params: dict[str, Any]) -> Iterator[Event]:
        with self._t.stream(path, params=params) as response:
            for event in parse_events(response.iter_lines()):
                yield event
                if event.event == "end":
                    return

    # ------------------------------------------------------------------ sites, queue
    def sites(self) -> list[dict[str, Any]]:
        return list(self._t.request("GET", "/api/v1/sites")["items"])

    def site(self, name: str) -> dict[str, Any]:
        return dict(self._t.request("GET", f"/api/v1/sites/{name}"))

    def queue(self, run_id: str | None = None, *, limit: int = 200) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if run_id:
            params["run"] = run_id
        return list(self._t.request("GET", "/api/v1/queue", params=params)["items"])

    # ------------------------------------------------------------------ helpers
    def _pages(
        self, path: str, params: Mapping[str, Any], limit: int | None, *, page: int
    ) -> list[dict[str, Any]]:
        query = {k: v for k, v in params.items() if v is not None}
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            body = self._t.request(
                "GET",
                path,
                params={**query, "limit": page, **({"cursor": cursor} if cursor else {})},
            )
            out.extend(body["items"])
            cursor = body.get("next_cursor")
            if not cursor or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out
