"""Dependencies of the data routes: the caller with the scope a route needs, checked before
the request's body and parameters are (so a credential without it gets 403, not 422)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from hexflow.model.access import Scope
from hexflow.service.api.deps import caller
from hexflow.service.auth import Principal


def reader(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.READ)
    return who


def submitter(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.SUBMIT)
    return who


Reader = Annotated[Principal, Depends(reader)]
Submitter = Annotated[Principal, Depends(submitter)]
Project = Annotated[
    str | None, Query(description="the project (default: your only one)", max_length=64)
]
