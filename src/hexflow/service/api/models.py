"""Response bodies of the API (pydantic): what the OpenAPI document promises."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hexflow.model import RunRecord, TaskRecord
from hexflow.model.access import AuditEntry


class ErrorOut(BaseModel):
    error: str = Field(description="a short code: unauthorized, not_found, invalid_request...")
    message: str = Field(description="what happened")
    hint: str | None = Field(None, description="what to do about it")
    field: str | None = Field(None, description="the input at fault (query.limit, tasks.a.cpus)")
    line: int | None = Field(None, description="the line of a workflow document at fault")


class RunOut(BaseModel):
    id: str
    name: str
    project: str | None
    state: str
    submitted_by: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    cancel_requested: bool
    tasks: dict[str, int] | None = Field(None, description="task counts by state")
    triggered_by: dict[str, str] | None = Field(
        None, description="a run a workflow trigger submitted: {trigger: ID, event: SEQ}"
    )

    @classmethod
    def of(cls, run: RunRecord, counts: dict[str, int] | None = None) -> RunOut:
        by = run.config.get("submitted_by")
        return cls(
            id=run.id,
            name=run.name,
            project=run.project,
            state=run.state.value,
            submitted_by=by if isinstance(by, str) else None,
            created_at=run.created_at,
            started_at=run.started_at,
            ended_at=run.ended_at,
            cancel_requested=run.cancel_requested,
            tasks=counts,
            triggered_by=_triggered_by(run.config),
        )


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class TaskOut(BaseModel):
    id: str
    name: str
    kind: str
    state: str
    attempt: int
    deps: list[str]
    qos: str
    resources: dict[str, Any]
    submitted_at: float | None
    started_at: float | None
    ended_at: float | None
    duration: float | None
    exit_code: int | None
    reason: str | None
    error: str | None
    root_cause: str | None
    cached: bool

    @classmethod
    def of(cls, task: TaskRecord) -> TaskOut:
        s = task.summary()
        return cls(id=s.pop("task_id"), **{k: v for k, v in s.items() if k in cls.model_fields})


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = None


class TaskResultOut(BaseModel):
    run_id: str
    task_id: str
    name: str
    kind: str
    state: str
    attempt: int
    reason: str | None
    error: str | None
    exit_code: int | None
    traceback: str | None
    root_cause: str | None
    result: str | None = Field(
        None, description="base64 of the pickled return value (or exception) of a Python task"
    )


class LogsOut(BaseModel):
    run_id: str
    task_id: str
    attempt: int
    state: str
    stdout: str
    stderr: str
    truncated: bool = Field(description="only the tail of a log was sent")
    traceback: str | None


class LogPage(BaseModel):
    items: list[LogsOut]
    next_cursor: str | None = None


class SiteOut(BaseModel):
    name: str
    kind: str
    state: str = Field(description="active, degraded or unavailable")
    description: str
    pools: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    utilization: dict[str, float]
    queue: dict[str, int] = Field(description="runs_queued, runs_active, tasks_waiting...")
    outages: list[dict[str, Any]]


class SitePage(BaseModel):
    items: list[SiteOut]


class AuditOut(BaseModel):
    id: int
    at: float
    actor: str
    project: str | None
    action: str
    target: str
    outcome: str
    status: int | None
    source: str | None
    detail: str | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            project=entry.project,
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            status=entry.status,
            source=entry.source,
            detail=entry.detail,
        )


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


class OAuthErrorOut(BaseModel):
    error: str = Field(description="RFC 6749: invalid_client, invalid_request, ...")
    error_description: str
    message: str
    hint: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing, expired, revoked or forged credentials"},
    403: {"model": ErrorOut, "description": "the credential lacks the scope or role"},
    404: {"model": ErrorOut, "description": "no such object in your projects"},
    422: {"model": ErrorOut, "description": "invalid input; `field` names it"},
}


def _triggered_by(config: dict[str, Any]) -> dict[str, str] | None:
    trigger, event = config.get("trigger"), config.get("event")
    if isinstance(trigger, str) and isinstance(event, str):
        return {"trigger": trigger, "event": event}
    return None
