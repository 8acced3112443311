"""/api/v1/audit: the audit log, for project administrators and site administrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from hexflow.service.api.deps import caller, service
from hexflow.service.api.models import ERRORS, AuditOut, AuditPage
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=ERRORS)


@router.get("/audit", response_model=AuditPage)
def list_audit(
    who: Annotated[Principal, Depends(caller)],
    svc: Annotated[Service, Depends(service)],
    project: Annotated[str | None, Query(description="only this project")] = None,
    actor: Annotated[str | None, Query(description="only this user")] = None,
    action: Annotated[str | None, Query(description="e.g. run.submit, run.cancel")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    """Audit entries, newest first (needs the admin scope and role)."""
    entries, next_cursor = svc.audit.entries(
        who, project=project, actor=actor, action=action, cursor=cursor, limit=limit
    )
    return AuditPage(items=[AuditOut.of(e) for e in entries], next_cursor=next_cursor)
