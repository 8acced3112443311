"""/api/v1/storage: the project's usage of each storage tier, with quotas and capacities."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from hexflow.service.api.data_deps import Project, Reader
from hexflow.service.api.data_models import StorageOut, TierUsageOut
from hexflow.service.api.deps import service
from hexflow.service.api.models import ERRORS
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["data"], responses=ERRORS)


@router.get("/storage", response_model=StorageOut)
def get_storage(
    who: Reader, svc: Annotated[Service, Depends(service)], project: Project = None
) -> StorageOut:
    """Bytes and files of the project in each tier of this site, next to its quota and the
    tier's capacity."""
    name, rows = svc.data.usage(who, project)
    tiers = [
        TierUsageOut(**{k: v for k, v in r.items() if k in TierUsageOut.model_fields}) for r in rows
    ]
    return StorageOut(project=name, site=svc.data.storage.site, tiers=tiers)
