"""The OAuth2 token endpoint's logic: client-credentials grant with private_key_jwt
(RFC 7523), answering ``{"access_token", "token_type": "Bearer", "expires_in"}`` as
sfapi_client (Authlib) expects. Requests from known clients are audited."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from hexflow.service.assertions import verify_client_assertion
from hexflow.service.audit import Audit, AuditNote
from hexflow.service.errors import OAuthError, status_of
from hexflow.service.tokens import AccessTokens
from hexflow.store.service_db import ServiceDb


class OAuthService:
    def __init__(
        self,
        db: ServiceDb,
        tokens: AccessTokens,
        audit: Audit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._audit = audit
        self._now = clock

    def token(
        self,
        *,
        grant_type: str | None,
        assertion_type: str | None,
        assertion: str | None,
        audiences: Collection[str],
        source: str | None,
    ) -> dict[str, Any]:
        now = self._now()
        try:
            client = verify_client_assertion(
                self._db,
                grant_type=grant_type,
                assertion_type=assertion_type,
                assertion=assertion,
                audiences=audiences,
                now=now,
            )
        except OAuthError as exc:
            known = exc.fields.get("client")
            if isinstance(known, str):  # unknown clients are not logged: no log flooding
                found = self._db.accounts.get_client(known)
                note = AuditNote(project=found.project if found else None, target=known)
                self._audit.record(
                    f"client:{known}", "oauth.token", note, "denied", source,
                    status_of(exc), exc.message,
                )  # fmt: skip
            raise
        with self._audit.action(
            client.user, "oauth.token", project=client.project, target=client.client_id,
            source=source,
        ) as note:  # fmt: skip
            access = self._tokens.issue(
                user=client.user,
                project=client.project,
                scopes=client.scopes,
                client_id=client.client_id,
                now=now,
            )
            note.status = 200
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self._tokens.ttl,
            "scope": " ".join(sorted(s.value for s in client.scopes)),
        }
