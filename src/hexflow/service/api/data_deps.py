"""Dependencies of the data routes: the caller with the scope a route needs, checked before
the request's body and parameters are (so a credential without it gets 403, not 422)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from hexflow.service.api.deps import ReaderCaller, SubmitterCaller

Reader = ReaderCaller
Submitter = SubmitterCaller
Project = Annotated[
    str | None, Query(description="the project (default: your only one)", max_length=64)
]
