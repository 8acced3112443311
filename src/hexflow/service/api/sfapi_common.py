"""What the SFAPI facade's routes share: the prefix, and dependencies that check the
caller's scope before the request body is read (so a missing scope is a 403, not a 422)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from hexflow.model.access import Scope
from hexflow.service.api.deps import caller
from hexflow.service.auth import Principal

PREFIX = "/api/v1.2"


# async: no I/O, so no worker thread (FastAPI runs plain function dependencies on one)
async def _reader(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.READ)
    return who


async def _submitter(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require_scope(Scope.SUBMIT)
    return who


Reader = Annotated[Principal, Depends(_reader)]
Submitter = Annotated[Principal, Depends(_submitter)]
