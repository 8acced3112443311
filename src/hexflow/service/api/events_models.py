"""Request and response bodies of the events, functions and triggers API (pydantic)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictInt

from hexflow.model.events import Event
from hexflow.model.functions import FunctionDef, Invocation
from hexflow.model.triggers import Trigger


class EventOut(BaseModel):
    seq: int = Field(description="position in the log; pass the last one seen as ?after=")
    kind: str = Field(description="task.<state>, run.<state>, webhook.received, ...")
    project: str | None
    subject: str = Field(description="run id, run/task, trigger id or function name")
    at: float
    data: dict[str, Any]

    @classmethod
    def of(cls, ev: Event) -> EventOut:
        return cls(
            seq=ev.seq,
            kind=ev.kind,
            project=ev.project,
            subject=ev.subject,
            at=ev.at,
            data=dict(ev.data),
        )


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="pass as ?after= to read on (also when items is empty)")


class FunctionIn(BaseModel):
    name: str = Field(description="the name callers invoke it by (a new version if it exists)")
    import_path: str | None = Field(None, description="package.module:function")
    source: str | None = Field(None, description="Python source that defines the function")
    entrypoint: str | None = Field(
        None, description="the function the source defines (default: name)"
    )
    env: dict[str, str] = Field(default_factory=dict)
    cpus: float = 1.0
    memory: int | None = Field(None, description="bytes")
    timeout: float = Field(60.0, description="seconds one invocation may run")
    min_workers: int = Field(1, description="warm workers kept for the function's environment")
    max_workers: int = Field(4, description="most workers when calls queue")
    qos: str | None = Field(
        None,
        description="QoS of the workflows it submits when an event called it "
        "(default: urgent); realtime, urgent, interactive, regular or preempt",
    )


class FunctionOut(BaseModel):
    project: str
    name: str
    version: int
    kind: str
    target: str
    args_schema: dict[str, Any] = Field(description="JSON Schema of the arguments")
    env: dict[str, str]
    cpus: float
    memory: int | None
    timeout: float
    min_workers: int
    max_workers: int
    created_at: float
    created_by: str
    qos: str | None = None

    @classmethod
    def of(cls, fn: FunctionDef) -> FunctionOut:
        s = fn.summary()
        s["args_schema"] = s.pop("schema")
        return cls(**s)


class FunctionList(BaseModel):
    items: list[FunctionOut]


class InvocationOut(BaseModel):
    id: str
    project: str
    function: str
    version: int
    state: str = Field(description="queued, running, succeeded, failed, timed_out")
    args: dict[str, Any]
    created_at: float
    started_at: float | None
    ended_at: float | None
    duration: float | None
    result: Any = None
    error: str | None
    traceback: str | None
    caller: str
    source: str
    attempt: int

    @classmethod
    def of(cls, inv: Invocation) -> InvocationOut:
        return cls(**inv.summary())


class UploadIn(BaseModel):
    size: StrictInt = Field(description="the exact number of bytes you will PUT")
    tier: str | None = Field(None, description="a storage tier (default: the first POSIX one)")


class UploadOut(BaseModel):
    id: str
    ref: dict[str, str] = Field(description='pass as an argument: {"$ref": "upload:TIER/ID"}')
    tier: str
    method: str = Field(description="PUT")
    url: str = Field(description="where to PUT the bytes (no bearer token)")
    headers: dict[str, str] = Field(description="headers the PUT must carry")
    size: int
    expires_at: float


class UploadDone(BaseModel):
    id: str
    ref: dict[str, str]
    size: int


class InvocationPage(BaseModel):
    items: list[InvocationOut]
    next_cursor: str | None = None


class TriggerIn(BaseModel):
    name: str = ""
    kind: str = Field(description="webhook, file, schedule, event or dataset")
    function: str = Field("", description="the function the trigger calls (or: workflow)")
    workflow: str | None = Field(
        None, description="the YAML of a workflow each event submits (instead of a function)"
    )
    config: dict[str, Any] = Field(default_factory=dict, description="see docs/events.md")
    args: dict[str, Any] = Field(
        default_factory=dict, description="constant arguments (a workflow's: params)"
    )


class TriggerOut(BaseModel):
    id: str
    project: str
    name: str
    kind: str
    function: str
    workflow: str | None = None
    target: str = Field(description="what it runs: 'function NAME' or 'workflow NAME'")
    config: dict[str, Any]
    args: dict[str, Any]
    enabled: bool
    created_at: float
    created_by: str
    fired: int
    last_fired_at: float | None
    last_error: str | None
    hook_url: str | None = Field(None, description="webhooks: where to POST signed requests")
    secret: str | None = Field(None, description="webhooks: the HMAC key, shown only at creation")

    @classmethod
    def of(cls, t: Trigger, *, with_secret: bool = False) -> TriggerOut:
        hook = f"/api/v1/hooks/{t.id}" if t.kind.value == "webhook" else None
        return cls(**t.summary(), hook_url=hook, secret=t.secret if with_secret else None)


class TriggerList(BaseModel):
    items: list[TriggerOut]


class HookAccepted(BaseModel):
    seq: int = Field(description="the event's position in the log")
    trigger: str
