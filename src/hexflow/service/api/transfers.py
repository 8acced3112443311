"""/api/v1/transfers: start a verified copy between tiers (it runs in the background),
list and follow transfers, resume a failed or interrupted one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from hexflow.service.api.data_deps import Project, Reader, Submitter
from hexflow.service.api.data_models import TransferIn, TransferOut, TransferPage
from hexflow.service.api.deps import service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["data"], responses=ERRORS)

Svc = Annotated[Service, Depends(service)]
TransferId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="the transfer's id (12 hex digits)")
]
_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": TransferOut, "description": "planned and queued: GET its Location"},
    409: {"description": "over the project's quota (or the tier's capacity), or running"},
}


@router.post("/transfers", status_code=202, response_model=TransferOut, responses=_ACCEPTED)
def start_transfer(
    body: TransferIn, request: Request, who: Submitter, svc: Svc, project: Project = None
) -> JSONResponse:
    """Copy a file or directory from one tier location to another, checksummed end to end.
    The files are listed and the quota checked now (422/409 if not possible); the copy
    runs in the background: follow it with GET /transfers/{id}."""
    rec = svc.data.start_transfer(
        who, project, body.source, body.destination, address=source(request)
    )
    return JSONResponse(
        TransferOut.of(rec).model_dump(),
        status_code=202,
        headers={"Location": f"/api/v1/transfers/{rec.id}"},
    )


@router.get("/transfers", response_model=TransferPage)
def list_transfers(
    who: Reader,
    svc: Svc,
    project: Project = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many")] = 50,
) -> TransferPage:
    """The project's transfers, newest first."""
    return TransferPage(items=[TransferOut.of(r) for r in svc.data.transfers(who, project, limit)])


@router.get("/transfers/{transfer_id}", response_model=TransferOut)
def get_transfer(transfer_id: TransferId, who: Reader, svc: Svc) -> TransferOut:
    """One transfer with the state, digest, tries and error of each file."""
    rec, items = svc.data.transfer(who, transfer_id)
    return TransferOut.of(rec, items)


@router.post(
    "/transfers/{transfer_id}/resume",
    status_code=202,
    response_model=TransferOut,
    responses=_ACCEPTED,
)
def resume_transfer(
    transfer_id: TransferId, request: Request, who: Submitter, svc: Svc
) -> JSONResponse:
    """Go on with a failed or interrupted transfer: files already verified are not copied
    again; a large file goes on from its last checkpoint. A finished one is returned as is."""
    rec = svc.data.resume(who, transfer_id, address=source(request))
    return JSONResponse(
        TransferOut.of(rec).model_dump(),
        status_code=202,
        headers={"Location": f"/api/v1/transfers/{rec.id}"},
    )
