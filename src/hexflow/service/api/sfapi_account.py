"""SFAPI v1.2 account routes: the caller (``account/``, served with and without the
trailing slash, since sfapi_client does not follow redirects), its projects, roles, groups
(a project is the group of its members) and OAuth clients. Groups are read-only here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from hexflow.service.api.deps import service
from hexflow.service.api.models import ERRORS
from hexflow.service.api.sfapi_common import PREFIX, Reader
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
    return svc.sfapi_account.groups(who)


@router.get("/account/groups/{group}")
def group(group: str, who: Reader, svc: Svc) -> dict[str, Any]:
    return svc.sfapi_account.group(who, group)


@router.get("/account/clients")
def clients(who: Reader, svc: Svc) -> list[dict[str, Any]]:
    """Your OAuth clients (never their keys)."""
    return svc.sfapi_account.clients(who)
