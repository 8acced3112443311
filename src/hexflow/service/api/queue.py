"""/api/v1/queue: waiting tasks of your active runs, in priority order, with reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from hexflow.service.api.deps import caller, service
from hexflow.service.api.models import ERRORS
from hexflow.service.auth import Principal
from hexflow.service.core import Service
from hexflow.service.queue import queue_rows

router = APIRouter(prefix="/api/v1", tags=["runs"], responses=ERRORS)


@router.get("/queue")
def queue(
    who: Annotated[Principal, Depends(caller)],
    svc: Annotated[Service, Depends(service)],
    run: Annotated[str | None, Query(description="only this run")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, list[dict[str, Any]]]:
    """Waiting tasks in priority order, each with the scheduler's reason (``hexflow queue``)."""
    rows = queue_rows(svc.db, svc.runs, who, run_id=run, limit=limit, now=svc.clock())
    return {"items": rows}
