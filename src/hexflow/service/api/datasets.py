"""/api/v1/datasets and /api/v1/search: the dataset catalog — datasets, immutable versions,
their lineage, RO-Crate export, search, and registering files of a tier as a version."""

from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from hexflow.service.api.data_deps import Project, Reader, Submitter
from hexflow.service.api.data_models import (
    DatasetDetail,
    DatasetList,
    DatasetOut,
    EdgeOut,
    FileOut,
    LineageOut,
    RegisterIn,
    RegisterOut,
    ReplicaOut,
    SearchOut,
    VersionDetail,
    VersionOut,
)
from hexflow.service.api.deps import service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.core import Service

router = APIRouter(prefix="/api/v1", tags=["data"], responses=ERRORS)

Svc = Annotated[Service, Depends(service)]
Name = Annotated[str, Path(max_length=128, description="the dataset's name")]
Version = Annotated[
    str,
    Path(
        max_length=80,
        description="a version number, a digest prefix, or latest",
    ),
]


@router.get("/datasets", response_model=DatasetList)
def list_datasets(who: Reader, svc: Svc, project: Project = None) -> DatasetList:
    """The project's datasets with their number of versions and the newest one."""
    name, rows = svc.data.datasets(who, project)
    items = [DatasetOut(**{k: r[k] for k in DatasetOut.model_fields}) for r in rows]
    return DatasetList(project=name, items=items)


@router.post(
    "/datasets",
    status_code=201,
    response_model=RegisterOut,
    responses={
        200: {"model": RegisterOut, "description": "the same content: the existing version"},
        409: {"description": "copying into `tier` would exceed the project's quota"},
    },
)
def register_version(
    body: RegisterIn, request: Request, who: Submitter, svc: Svc, project: Project = None
) -> JSONResponse:
    """Register the files at a tier location as a new immutable version (201), registered
    where they are or copied, verified, into `tier`. Identical content is the existing
    version (200)."""
    version, created = svc.data.register(
        who,
        project,
        name=body.name,
        source=body.source,
        tier=body.tier,
        metadata=body.metadata,
        inputs=body.inputs,
        address=source(request),
    )
    out = RegisterOut(**VersionOut.of(version).model_dump(), created=created)
    location = f"/api/v1/datasets/{version.name}/versions/{version.number}"
    return JSONResponse(
        out.model_dump(), status_code=201 if created else 200, headers={"Location": location}
    )


@router.get("/datasets/{name}", response_model=DatasetDetail)
def get_dataset(name: Name, who: Reader, svc: Svc, project: Project = None) -> DatasetDetail:
    """A dataset and all its versions, oldest first."""
    where, versions = svc.data.versions(who, project, name)
    return DatasetDetail(project=where, name=name, versions=[VersionOut.of(v) for v in versions])


@router.get("/datasets/{name}/versions/{version}", response_model=VersionDetail)
def get_version(
    name: Name, version: Version, who: Reader, svc: Svc, project: Project = None
) -> VersionDetail:
    """One version: identifier, metadata, every file with its digest, and its replicas."""
    view = svc.data.version(who, project, name, version)
    return VersionDetail(
        **VersionOut.of(view.version).model_dump(),
        file_list=[FileOut(**f.as_dict()) for f in view.files],
        replicas=[ReplicaOut.of(r) for r in view.replicas],
    )


@router.get("/datasets/{name}/versions/{version}/lineage", response_model=LineageOut)
def get_lineage(
    name: Name,
    version: Version,
    who: Reader,
    svc: Svc,
    project: Project = None,
    downstream: Annotated[
        bool, Query(description="what was made from it (default: what it was made from)")
    ] = False,
    depth: Annotated[int, Query(ge=1, le=100, description="task runs away to follow")] = 10,
) -> LineageOut:
    """Provenance: the task runs and versions this version was made from (or made into)."""
    found, edges = svc.data.lineage(who, project, name, version, downstream=downstream, depth=depth)
    return LineageOut(
        ref=found.ref,
        direction="downstream" if downstream else "upstream",
        edges=[EdgeOut.of(e) for e in edges],
    )


@router.get(
    "/datasets/{name}/versions/{version}/export",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "the version as an RO-Crate (files verified, metadata, provenance)",
        }
    },
)
def export_version(
    name: Name,
    version: Version,
    request: Request,
    who: Reader,
    svc: Svc,
    project: Project = None,
    license: Annotated[
        str | None,
        Query(max_length=512, description="license URL, if the metadata has none"),
    ] = None,
) -> FileResponse:
    """The version as a zipped RO-Crate: its files (checked against the manifest on the
    way), the DataCite/schema.org metadata, its PID and its provenance."""
    found, archive = svc.data.export(
        who, project, name, version, license=license, address=source(request)
    )
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=f"{found.name}-{found.number}.crate.zip",
        background=BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True),
    )


@router.get("/search", response_model=SearchOut)
def search(
    who: Reader,
    svc: Svc,
    project: Project = None,
    q: Annotated[
        str | None, Query(max_length=512, description="words (name, metadata, file names)")
    ] = None,
    name: Annotated[
        str | None, Query(max_length=128, description="the name contains this (or a glob: *)")
    ] = None,
    meta: Annotated[
        list[str], Query(description="KEY=VALUE that must hold (a.b for nested; repeat)")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    order: Annotated[
        str, Query(pattern="^(newest|relevance)$", description="newest first, or best match")
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SearchOut:
    """Versions matching every filter given, newest first (or best full-text match first)."""
    where, found = svc.data.search(
        who, project, text=q, name=name, meta=meta, limit=limit, order=order
    )
    return SearchOut(project=where, items=[VersionOut.of(v) for v in found])
