"""SFAPI v1.2 account routes: the caller (``account/``, served with and without the
trailing slash, since sfapi_client does not follow redirects), its projects, roles, OAuth
clients and groups (each project, and the named groups its administrators create)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request

from hexflow.service.api.deps import service, source
from hexflow.service.api.models import ERRORS
from hexflow.service.api.sfapi_common import PREFIX, Admin, Reader
from hexflow.service.core import Service

router = APIRouter(prefix=PREFIX, tags=["sfapi"], responses=ERRORS)

Svc = Annotated[Service, Depends(service)]
Username = Annotated[str | None, Query(description="another member of your projects")]


@router.get("/account/")
def account(who: Reader, svc: Svc, username: Username = None) -> dict[str, Any]:
    """The token's user (or, with ``username``, a member of one of your projects)."""
    return svc.sfapi_account.user(who, username)


@router.get("/account")
def account_no_slash(who: Reader, svc: Svc, username: Username = None) -> dict[str, Any]:
    return svc.sfapi_account.user(who, username)


@router.get("/account/projects")
def projects(who: Reader, svc: Svc) -> list[dict[str, Any]]:
    return svc.sfapi_account.projects(who)


@router.get("/account/roles")
def roles(who: Reader, svc: Svc) -> list[dict[str, Any]]:
    return svc.sfapi_account.roles(who)


@router.get("/account/groups")
def groups(who: Reader, svc: Svc) -> dict[str, Any]:
    """Your projects (each the group of its members), then the named groups in them."""
    return svc.sfapi_groups.groups(who)


@router.post("/account/groups")
def create_group(
    request: Request,
    who: Admin,
    svc: Svc,
    name: Annotated[str, Form(description="the new group's name (unique on this server)")],
    repo_name: Annotated[str, Form(description="the project it belongs to (you administer)")],
) -> dict[str, Any]:
    """Create an empty group in a project you administer (the ``admin`` scope too)."""
    return svc.sfapi_groups.create(who, name, repo_name, source=source(request))


@router.get("/account/groups/{group}")
def group(group: str, who: Reader, svc: Svc) -> dict[str, Any]:
    return svc.sfapi_groups.group(who, group)


@router.put("/account/groups/{group}")
def update_group(
    group: str,
    request: Request,
    who: Admin,
    svc: Svc,
    action: Annotated[Literal["batch_add", "batch_remove"], Form(description="add or remove")],
    usernames: Annotated[str, Form(description="comma-separated members of the project")],
    group_form: Annotated[
        str | None, Form(alias="group", description="the group again (as sfapi_client sends)")
    ] = None,
) -> dict[str, Any]:
    """Add or remove members of a named group (all or none); answers the group."""
    return svc.sfapi_groups.change(
        who, group, action=action, usernames=usernames, group=group_form, source=source(request)
    )


@router.get("/account/clients")
def clients(who: Reader, svc: Svc) -> list[dict[str, Any]]:
    """Your OAuth clients (never their keys)."""
    return svc.sfapi_account.clients(who)
