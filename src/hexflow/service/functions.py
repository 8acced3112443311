"""FunctionService: what the functions API does — register, list, invoke (synchronously or
not), read invocations — within the projects the caller's credential reaches, and the
operations functions ask for through their context (submit a workflow, call a function,
"on completion of run R, call X").

Invocations are not written to the audit log one by one (thousands a second): each is its
own record, with its caller, source and times. Registrations are audited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from hexflow.errors import NotFound, ServiceError, SpecError
from hexflow.events.functions.registry import Registration
from hexflow.events.system import EventSystem
from hexflow.model.access import Scope
from hexflow.model.functions import FunctionDef, Invocation
from hexflow.model.ids import new_id
from hexflow.model.qos import QoS
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.manager import RunManager
from hexflow.service.pages import decode_cursor, encode_cursor
from hexflow.service.workflow_body import read_workflow
from hexflow.store.service_db import ServiceDb


@dataclass(frozen=True)
class Called:
    invocation: Invocation
    done: bool  # False: still queued or running (answer 202, poll for the result)


class FunctionService:
    def __init__(
        self,
        db: ServiceDb,
        events: EventSystem,
        manager: RunManager,
        audit: Audit,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._events = events
        self._manager = manager
        self._audit = audit
        self._now = clock
        events.gateway.on_intents = self._apply_intents

    @property
    def max_payload(self) -> int:
        return self._events.config.max_payload_bytes

    # ------------------------------------------------------------------ registry
    def register(
        self, who: Principal, project: str | None, reg: Registration, *, source: str | None
    ) -> FunctionDef:
        with self._audit.action(
            who.name, "function.register", project=project, source=source
        ) as note:
            project = project or who.default_project(Scope.SUBMIT)
            note.project = project
            who.check_project(project, Scope.SUBMIT)
            note.target = reg.name
            fn = self._events.registry.register(project, reg, user=who.name)
            note.detail = f"version {fn.version}"
            self._events.gateway.warm(fn)
            return fn

    def list_functions(self, who: Principal, project: str | None) -> list[FunctionDef]:
        projects = self._visible(who, Scope.READ, project)
        return self._events.registry.list_functions(projects)

    def get(
        self, who: Principal, name: str, project: str | None, version: int | None = None
    ) -> FunctionDef:
        project = self._project(who, Scope.READ, project)
        return self._events.registry.get(project, name, version)

    # ------------------------------------------------------------------ invoke
    def prepare(
        self, who: Principal, name: str, project: str | None, version: int | None, args: Any
    ) -> FunctionDef:
        """The function to call, once the caller may and the arguments fit (422 naming the
        argument at fault) and the project is within its rate (429 with Retry-After)."""
        project = self._project(who, Scope.INVOKE, project)
        fn = self._events.registry.get(project, name, version)
        self._events.registry.check_args(fn, args)
        wait = self._events.limiter.take(project, time.monotonic())
        if wait > 0:
            raise ServiceError(
                f"project {project!r} is over its rate of function calls "
                f"({self._events.limiter.rate:g}/s)",
                hint=f"retry after {wait:.2f} s",
                status=429,
                retry_after=wait,
            )
        return fn

    def check_callback(self, url: str) -> None:
        """422 naming ``callback`` unless the server may POST to ``url``."""
        self._events.callbacks.check(url)

    def callback_secret(self, project: str) -> str:
        return self._events.callbacks.secret(project)

    def callback_secret_for(self, who: Principal, project: str | None) -> tuple[str, str]:
        """(project, its callback secret) for a caller who may invoke its functions."""
        project = self._project(who, Scope.INVOKE, project)
        return project, self._events.callbacks.secret(project)

    async def invoke(
        self,
        who: Principal,
        fn: FunctionDef,
        args: dict[str, Any],
        *,
        wait: float | None,
        callback: str | None = None,
    ) -> Called:
        """Record the invocation; with ``wait``, wait up to that long for its end. A
        ``callback`` URL (checked) is stored first, under the id the invocation will have."""
        invocation_id = None
        if callback is not None:
            invocation_id = new_id(16)
            await asyncio.to_thread(
                self._events.callbacks.record, invocation_id, fn.project, callback
            )
        inv = await self._events.gateway.invoke(
            fn, args, caller=who.name, source="api", invocation_id=invocation_id
        )
        if wait is None or wait <= 0:
            return Called(inv, done=False)
        wait = min(wait, self._events.config.sync_wait)
        ended = await self._events.gateway.wait(inv.id, wait)
        if ended is None:  # not ended in time, or it ended before we started waiting
            found = await asyncio.to_thread(self._events.gateway.get, inv.id, [fn.project])
            ended = found if found is not None and found.state.terminal else None
        if ended is None:
            return Called(self._events.gateway.snapshot(inv.id) or inv, done=False)
        return Called(ended, done=True)

    # ------------------------------------------------------------------ uploads
    def create_upload(
        self,
        who: Principal,
        name: str,
        project: str | None,
        *,
        size: int,
        tier: str | None,
        base_url: str,
    ) -> dict[str, Any]:
        """A pre-signed upload target for data to pass ``name`` by reference."""
        project = self._project(who, Scope.INVOKE, project)
        self._events.registry.get(project, name)  # 404 for a function it cannot call
        return self._events.uploads.grant(project, size, tier, self._now(), base_url)

    async def receive_upload(
        self, token: str, declared: int | None, body: AsyncIterator[bytes]
    ) -> dict[str, Any]:
        """The bytes PUT to a pre-signed POSIX upload URL (the token is the credential)."""
        grant = self._events.uploads.check_token(token, self._now())
        return await self._events.uploads.receive(grant, declared, body)

    def invocation(self, who: Principal, invocation_id: str) -> Invocation:
        projects = who.projects(Scope.READ)
        who.require_scope(Scope.READ)
        live = self._events.gateway.snapshot(invocation_id)
        if live is not None and live.project in projects:
            return live
        found = self._events.gateway.get(invocation_id, list(projects))
        if found is None:
            raise NotFound(
                f"no invocation {invocation_id!r}",
                hint="invocation ids are returned by POST /api/v1/functions/{name}/invoke",
                invocation=invocation_id,
            )
        return found

    def invocations(
        self,
        who: Principal,
        *,
        project: str | None,
        function: str | None,
        state: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Invocation], str | None]:
        from hexflow.store import functions_sql

        projects = self._visible(who, Scope.READ, project)
        before = decode_cursor(cursor, (float, str)) if cursor else None
        with self._db.read() as conn:
            found = functions_sql.list_invocations(
                conn,
                projects,
                function=function,
                state=state,
                before=(before[0], before[1]) if before else None,
                limit=limit,
            )
        last = found[-1] if len(found) == limit else None
        return found, encode_cursor(last.created_at, last.id) if last else None

    def pools(self, who: Principal) -> list[dict[str, Any]]:
        projects = who.projects(Scope.READ)
        who.require_scope(Scope.READ)
        return [p for p in self._events.gateway.pools() if p["project"] in projects]

    # ------------------------------------------------------------------ helpers
    def _project(self, who: Principal, needed: Scope, project: str | None) -> str:
        project = project or who.default_project(needed)
        who.check_project(project, needed)
        return project

    def _visible(self, who: Principal, needed: Scope, project: str | None) -> set[str]:
        who.require_scope(needed)
        if project is not None:
            who.check_project(project, needed)
            return {project}
        return who.projects(needed)

    # ------------------------------------------------------------------ intents
    async def _apply_intents(self, inv: Invocation, intents: list[dict[str, Any]]) -> None:
        """What a function asked for, in an order that cannot miss an event: completion
        triggers first, then runs, then calls. Each is idempotent (ids from the invocation)."""
        order = {"on_completion": 0, "submit": 1, "invoke": 2}
        intent: dict[str, Any]
        for intent in sorted(intents, key=lambda i: order.get(str(i.get("op")), 9)):
            op = intent.get("op")
            if op == "on_completion":
                await asyncio.to_thread(
                    self._events.triggers.on_completion,
                    inv.project,
                    trigger_id=intent["trigger_id"],
                    run_id=intent["run_id"],
                    function=intent["function"],
                    args=intent.get("args") or {},
                    user=inv.caller,
                )
            elif op == "submit":
                await asyncio.to_thread(self._submit, inv, intent)
            elif op == "invoke":
                fn = self._events.registry.get(inv.project, intent["function"])
                self._events.registry.check_args(fn, intent.get("args") or {})
                await self._events.gateway.invoke(
                    fn,
                    intent.get("args") or {},
                    caller=inv.caller,
                    source=f"function:{inv.id}",
                    key=f"intent:{intent['invocation_id']}",
                    invocation_id=intent["invocation_id"],
                )
            else:
                raise SpecError(f"unknown operation {op!r} in the function's context")

    def _submit(self, inv: Invocation, intent: dict[str, Any]) -> None:
        import json

        run_id = intent["run_id"]
        if self._db.runs.get_run(run_id, [inv.project]) is not None:
            return  # submitted by an earlier attempt of this invocation
        workflow = intent["workflow"]
        body = workflow.encode() if isinstance(workflow, str) else json.dumps(workflow).encode()
        kind = "application/yaml" if isinstance(workflow, str) else "application/json"
        params = {str(k): str(v) for k, v in (intent.get("params") or {}).items()}
        doc = read_workflow(body, kind, params, max_bytes=1 << 20, allow_python=False)
        specs = doc.specs
        fn = self._events.registry.get(inv.project, inv.function, inv.version)
        qos = fn.submit_qos(inv.source)
        if qos is not None:  # event work: tasks left at the default take the event QoS
            specs = [replace(s, qos=qos) if s.qos is QoS.REGULAR else s for s in specs]
        self._manager.create(doc.name, specs, run_id=run_id, project=inv.project, user=inv.caller)
