"""SFAPI v1.2 compute routes: batch jobs (submit, squeue/sacct views, cancel), commands
(``utilities/command``) and the task polling flow (``tasks``). Bodies are forms, as
sfapi_client sends them; operational failures answer 200 with ``status: ERROR``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request

from hexflow.service.api.deps import app_service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.api.sfapi_common import PREFIX, Reader, Submitter
from hexflow.service.core import Service

router = APIRouter(prefix=PREFIX, tags=["sfapi"], responses=ERRORS)

Svc = Annotated[Service, Depends(app_service)]
Sacct = Annotated[bool, Query(description="accounting view (finished jobs too)")]
Cached = Annotated[bool, Query(description="accepted and ignored: answers are always fresh")]


@router.post("/compute/jobs/{machine}")
def submit_job(
    machine: str,
    request: Request,
    who: Submitter,
    svc: Svc,
    job: Annotated[str, Form(description="a script path (isPath=true) or the script text")],
    isPath: Annotated[bool, Form(description="job is a path")],  # noqa: N803 - SFAPI's name
    args: Annotated[list[str], Form(description="script arguments (isPath only)")] = [],  # noqa: B006
) -> dict[str, Any]:
    """Submit a batch script: a run of one task; ``task_id`` is also the job id."""
    return svc.sfapi.submit(
        who, machine, job=job, is_path=isPath, args=args, source=source(request)
    )


@router.get("/compute/jobs/{machine}")
def list_jobs(
    machine: str,
    who: Reader,
    svc: Svc,
    sacct: Sacct = False,
    cached: Cached = True,
    kwargs: Annotated[
        list[str], Query(description="jobid=ID[,ID...], user=NAME or partition=NAME")
    ] = [],  # noqa: B006
) -> dict[str, Any]:
    """Jobs as squeue (unfinished) or sacct (all) rows; by default the caller's own."""
    return svc.sfapi.jobs(who, machine, sacct=sacct, kwargs=kwargs)


@router.get("/compute/jobs/{machine}/{jobid}")
def get_job(
    machine: str, jobid: str, who: Reader, svc: Svc, sacct: Sacct = False, cached: Cached = True
) -> dict[str, Any]:
    return svc.sfapi.job(who, machine, jobid, sacct=sacct)


@router.delete("/compute/jobs/{machine}/{jobid}")
def cancel_job(
    machine: str, jobid: str, request: Request, who: Submitter, svc: Svc
) -> dict[str, Any]:
    """Cancel a job (scancel)."""
    return svc.sfapi.cancel_job(who, machine, jobid, source=source(request))


@router.post("/utilities/command/{machine}")
def run_command(
    machine: str,
    request: Request,
    who: Submitter,
    svc: Svc,
    executable: Annotated[str, Form(description="a command line, run by /bin/sh -c")],
) -> dict[str, Any]:
    """Run a command in your project's directory; poll ``tasks/{task_id}`` for its output."""
    return svc.sfapi.command(who, machine, executable=executable, source=source(request))


@router.get("/tasks")
def list_tasks(who: Reader, svc: Svc) -> dict[str, Any]:
    """Your recent job submissions and commands as SFAPI tasks."""
    return svc.sfapi.tasks(who)


@router.get("/tasks/{task_id}")
def get_task(task_id: str, who: Reader, svc: Svc) -> dict[str, Any]:
    """A task: ``new`` while a command runs, then ``completed`` with its result (JSON text)."""
    return svc.sfapi.task(who, task_id)


@router.delete("/tasks/{task_id}")
def cancel_task(task_id: str, request: Request, who: Submitter, svc: Svc) -> dict[str, Any]:
    return svc.sfapi.cancel_task(who, task_id, source=source(request))
