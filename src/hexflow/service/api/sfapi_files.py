"""SFAPI v1.2 file utilities: ls, download, upload, confined to the directories of the
caller's projects (``service.sfapi.files``). ``{path}`` is everything after the machine,
so ``ls/perlmutter//abs/dir`` (sfapi_client's double slash) is the absolute ``/abs/dir``."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from hexflow.model.access import Scope
from hexflow.service.api.deps import service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.api.sfapi_common import PREFIX, Reader, Submitter
from hexflow.service.core import Service
from hexflow.service.sfapi.files import MAX_FILE_BYTES, FileProblem, ls, read_file, write_file
from hexflow.service.sfapi.jobs import error, ok

router = APIRouter(prefix=PREFIX, tags=["sfapi"], responses=ERRORS)

Svc = Annotated[Service, Depends(service)]


def _path(path: str) -> str:
    return path or "."


@router.get("/utilities/ls/{machine}/{path:path}")
def list_path(machine: str, path: str, who: Reader, svc: Svc) -> dict[str, Any]:
    """``ls -la``: a directory's entries (``.`` first, then ``..``), or one entry for a file
    (its path as given) or a symlink (``path -> target``)."""
    svc.sfapi.site_of(machine)
    try:
        return ok(entries=ls(svc.sfapi.area(who, Scope.READ), _path(path)))
    except FileProblem as exc:
        return error(str(exc), entries=[])


@router.get("/utilities/download/{machine}/{path:path}")
def download(
    machine: str,
    path: str,
    who: Reader,
    svc: Svc,
    binary: Annotated[bool, Query(description="base64 of the bytes instead of text")] = False,
) -> dict[str, Any]:
    svc.sfapi.site_of(machine)
    try:
        data = read_file(svc.sfapi.area(who, Scope.READ), _path(path))
    except FileProblem as exc:
        return error(str(exc), is_binary=binary)
    if binary:
        return ok(file=base64.b64encode(data).decode(), is_binary=True)
    try:
        return ok(file=data.decode(), is_binary=False)
    except UnicodeDecodeError:
        return error(f"{path}: not UTF-8 text; download it with binary=true", is_binary=False)


@router.put("/utilities/upload/{machine}/{path:path}")
async def upload(
    machine: str,
    path: str,
    request: Request,
    who: Submitter,
    svc: Svc,
    file: Annotated[UploadFile, File(description="the content; its filename is ignored")],
) -> dict[str, Any]:
    """Write the uploaded content to exactly ``{path}`` (created or replaced)."""
    svc.sfapi.site_of(machine)
    data = await file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return error(f"{path}: the upload is over {MAX_FILE_BYTES} bytes")
    return await run_in_threadpool(_write, svc, who, path, data, source(request))


def _write(svc: Service, who: Any, path: str, data: bytes, src: str | None) -> dict[str, Any]:
    with svc.audit.action(who.name, "sfapi.upload", target=path[:256], source=src) as note:
        try:
            written = write_file(svc.sfapi.area(who, Scope.SUBMIT), _path(path), data)
        except FileProblem as exc:
            note.detail = str(exc)
            return error(str(exc))
        return ok(output=f"{len(data)} bytes written to {written}")
