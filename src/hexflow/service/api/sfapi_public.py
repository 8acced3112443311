"""SFAPI v1.2 public routes (no token, as sfapi_client calls them): status, outages, notes
and meta (``status/globus``: the transfer service). The fixed paths come before
``status/{name}`` so they win."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from hexflow.service.api.deps import service
from hexflow.service.api.sfapi_common import PREFIX
from hexflow.service.core import Service

router = APIRouter(prefix=PREFIX, tags=["sfapi"])

Svc = Annotated[Service, Depends(service)]


@router.get("/status")
def statuses(svc: Svc) -> list[dict[str, Any]]:
    """The status of every machine."""
    return svc.sfapi_status.statuses(svc.clock())


@router.get("/status/outages")
def outages(svc: Svc) -> list[list[dict[str, Any]]]:
    """Current and past outages, one list per machine."""
    return svc.sfapi_status.all_outages(svc.clock(), planned=False)


@router.get("/status/outages/planned")
def planned_outages(svc: Svc) -> list[list[dict[str, Any]]]:
    """Announced future outages, one list per machine."""
    return svc.sfapi_status.all_outages(svc.clock(), planned=True)


@router.get("/status/outages/planned/{name}")
def planned_outages_of(name: str, svc: Svc) -> list[dict[str, Any]]:
    return svc.sfapi_status.outages(name, svc.clock(), planned=True)


@router.get("/status/outages/{name}")
def outages_of(name: str, svc: Svc) -> list[dict[str, Any]]:
    return svc.sfapi_status.outages(name, svc.clock(), planned=False)


@router.get("/status/notes")
def notes(svc: Svc) -> list[list[dict[str, Any]]]:
    return svc.sfapi_status.all_notes(svc.clock())


@router.get("/status/notes/{name}")
def notes_of(name: str, svc: Svc) -> list[dict[str, Any]]:
    return svc.sfapi_status.notes(name, svc.clock())


@router.get("/status/globus")
def globus_status(svc: Svc) -> dict[str, Any]:
    """The transfer service (``client.storage.globus()``) and its endpoints."""
    return svc.sfapi_globus.status(svc.clock())


@router.get("/status/{name}")
def status(name: str, svc: Svc) -> dict[str, Any]:
    """One machine's status: active, degraded or unavailable (during an outage)."""
    return svc.sfapi_status.status(name, svc.clock())


@router.get("/meta/changelog")
def changelog() -> list[dict[str, str]]:
    from hexflow.service.sfapi.views import CHANGELOG

    return CHANGELOG


@router.get("/meta/config")
def config(svc: Svc) -> list[dict[str, str | None]]:
    """Facade settings; ``compute.targets`` lists the machine names."""
    return svc.sfapi_status.config()


PUBLIC = frozenset(
    PREFIX + p
    for p in (
        "/status",
        "/status/outages",
        "/status/outages/planned",
        "/status/outages/planned/{name}",
        "/status/outages/{name}",
        "/status/notes",
        "/status/notes/{name}",
        "/status/globus",
        "/status/{name}",
        "/meta/changelog",
        "/meta/config",
    )
)
