"""/api/v1/sites: where the server runs work, with pools, nodes, utilization, queue depth
and announced outages (counts only: no project's data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from hexflow.model.access import Scope
from hexflow.service.api.deps import caller, service
from hexflow.service.api.models import ERRORS, SiteOut, SitePage
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["sites"], responses=ERRORS)

Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Service, Depends(service)]


def _site(svc: Service, name: str) -> dict[str, Any]:
    now = svc.clock()
    return svc.sites.get(name).status(now).as_json(now)


@router.get("/sites", response_model=SitePage)
def list_sites(who: Caller, svc: Svc) -> SitePage:
    """Every site of this server and its status now."""
    who.require_scope(Scope.READ)
    return SitePage(items=[SiteOut(**_site(svc, n)) for n in svc.sites.names()])


@router.get("/sites/{name}", response_model=SiteOut)
def get_site(name: str, who: Caller, svc: Svc) -> SiteOut:
    """One site and its status now."""
    who.require_scope(Scope.READ)
    return SiteOut(**_site(svc, name))
