"""What the SFAPI facade's routes share: the prefix, and dependencies that check the
caller's scope before the request body is read (so a missing scope is a 403, not a 422)."""

from __future__ import annotations

from hexflow.service.api.deps import AdminCaller, ReaderCaller, SubmitterCaller

PREFIX = "/api/v1.2"


Reader = ReaderCaller
Submitter = SubmitterCaller
Admin = AdminCaller
