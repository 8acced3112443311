"""/api/v1/services: a project's long-lived containers on the service node (docs/containers.md).

Listing needs ``read``; starting and stopping need ``submit`` in the project. Another
project's service is invisible (404), as everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from hexflow.service.api.deps import ReaderCaller, SubmitterCaller, caller, service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.auth import Principal
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["services"], responses=ERRORS)

Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Service, Depends(service)]
ProjectQ = Annotated[str | None, Query(description="default: your only project")]


class ServiceIn(BaseModel):
    name: str = Field(description="lower-case letters, digits and '-'")
    image: str = Field(description="an image podman has locally (never pulled)")
    port: str = Field(description="HOST_PORT or HOST_PORT:CONTAINER_PORT, on 127.0.0.1")
    env: dict[str, str] = Field(default_factory=dict)
    mounts: list[str] = Field(default_factory=list, description="/host:/container[:ro|rw]")
    command: list[str] = Field(default_factory=list)
    health_cmd: list[str] = Field(default_factory=list, description="run inside; 0 is healthy")
    health_tcp: bool = False


class ServiceOut(BaseModel):
    project: str
    name: str
    container: str
    image: str
    port: int
    container_port: int
    url: str
    state: str
    health: str
    restarts: int
    message: str
    user: str
    created_at: float


class ServicePage(BaseModel):
    items: list[ServiceOut]


def _out(status: Any) -> ServiceOut:
    return ServiceOut(**status.as_json())


@router.get("/services", response_model=ServicePage)
def list_services(who: ReaderCaller, svc: Svc, project: ProjectQ = None) -> ServicePage:
    """The services of your projects, with their state, health and restarts now."""
    return ServicePage(items=[_out(s) for s in svc.services.list_services(who, project)])


@router.post("/services", status_code=201, response_model=ServiceOut)
async def start_service(
    body: ServiceIn, request: Request, who: SubmitterCaller, svc: Svc, project: ProjectQ = None
) -> ServiceOut:
    """Start a service container: 409 if the name or port is taken, 422 for an unknown
    image or bad input."""
    status = await run_in_threadpool(
        svc.services.start,
        who,
        project,
        source=source(request),
        name=body.name,
        image=body.image,
        port=body.port,
        env=body.env,
        mounts=tuple(body.mounts),
        command=tuple(body.command),
        health_cmd=tuple(body.health_cmd),
        health_tcp=body.health_tcp,
    )
    return _out(status)


@router.delete("/services/{name}", response_model=ServiceOut)
def stop_service(
    name: str, request: Request, who: SubmitterCaller, svc: Svc, project: ProjectQ = None
) -> ServiceOut:
    """Stop and remove a service container."""
    return _out(svc.services.stop(who, project, name, source=source(request)))
