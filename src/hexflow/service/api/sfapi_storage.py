"""SFAPI v1.2 Globus transfer routes (``storage/globus/transfer``), backed by hexflow's
verified data transfers (``service.sfapi.globus``). Bodies are forms, as sfapi_client
sends them; refusals are HTTP errors with hexflow's JSON error (see the service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request

from hexflow.service.api.deps import service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.api.sfapi_common import PREFIX, Reader, Submitter
from hexflow.service.core import Service

router = APIRouter(prefix=PREFIX, tags=["sfapi"], responses=ERRORS)

Svc = Annotated[Service, Depends(service)]


@router.post("/storage/globus/transfer")
def start_transfer(
    request: Request,
    who: Submitter,
    svc: Svc,
    source_uuid: Annotated[str, Form(description="source endpoint (GET status/globus)")],
    target_uuid: Annotated[str, Form(description="target endpoint")],
    source_dir: Annotated[str, Form(description="file or directory to copy")],
    target_dir: Annotated[str, Form(description="where it goes (a directory: into it)")],
    label: Annotated[str, Form(description="a label, kept in the audit log")] = "",
) -> dict[str, Any]:
    """Start a verified copy in your project; poll ``storage/globus/transfer/{id}``."""
    return svc.sfapi_globus.start(
        who,
        source_uuid=source_uuid,
        target_uuid=target_uuid,
        source_dir=source_dir,
        target_dir=target_dir,
        label=label,
        address=source(request),
    )


@router.get("/storage/globus/transfer/{transfer_id}")
def transfer(
    transfer_id: Annotated[str, Path(description="the transfer's id (12 hex digits)")],
    who: Reader,
    svc: Svc,
) -> dict[str, Any]:
    """The transfer: ``globus_status`` ACTIVE, SUCCEEDED, FAILED or CANCELED, bytes moved."""
    return svc.sfapi_globus.result(who, transfer_id)
