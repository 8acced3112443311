"""Authentication (bearer credential -> Principal) and authorization (scope x role, per
project).

A Principal is a user acting through one credential: the credential's scopes, and the
user's memberships, narrowed to the credential's project when it is bound to one. Access
is decided from the database (one query: the credential, its user and the user's
memberships), on every request, or at most ``cache_ttl`` seconds ago (``hexflow server
--auth-cache``): revoking a token or client, or changing a membership, takes effect
within that bound (at once with 0). What a caller may not see is reported as not found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hexflow.errors import AuthError, Forbidden, NotFound, ServiceError
from hexflow.model.access import Role, Scope, User, format_scopes, has_scope, role_allows
from hexflow.service.tokens import TOKEN_PREFIX, AccessTokens, secret_matches, split_api_token
from hexflow.store.accounts import Access
from hexflow.store.service_db import ServiceDb


@dataclass(frozen=True)
class Principal:
    user: User
    roles: Mapping[str, Role]  # project -> role, only the projects this credential reaches
    scopes: frozenset[Scope]
    credential: str  # "token:<id>" or "client:<client_id>"
    bound_project: str | None = None  # the one project the credential is limited to

    @property
    def name(self) -> str:
        return self.user.name

    def require_scope(self, needed: Scope) -> None:
        if not has_scope(self.scopes, needed):
            raise Forbidden(
                f"this credential lacks the {needed.value!r} scope",
                hint=f"its scopes are {format_scopes(self.scopes) or 'none'}; ask an "
                f"administrator for a token with {needed.value!r}",
                scope=needed.value,
            )

    def projects(self, needed: Scope) -> set[str]:
        """The projects where this credential may do what ``needed`` allows."""
        if not has_scope(self.scopes, needed):
            return set()
        return {p for p, role in self.roles.items() if role_allows(role, needed)}

    def check_project(self, project: str, needed: Scope) -> None:
        """Not a member (or another project than the token's): 404; member without the
        role or scope: 403."""
        self.require_scope(needed)
        role = self.roles.get(project)
        if role is None:
            raise NotFound(
                f"no project {project!r}",
                hint="you can reach only the projects you are a member of (and a token bound "
                "to a project only that one)",
                project=project,
            )
        if not role_allows(role, needed):
            raise Forbidden(
                f"your role in project {project!r} ({role.value}) does not allow {needed.value!r}",
                hint="ask a project administrator for another role",
                project=project,
            )

    def default_project(self, needed: Scope) -> str:
        """The project a request that names none goes to: the only one reachable."""
        self.require_scope(needed)
        if len(self.roles) == 1:
            return next(iter(self.roles))
        if not self.roles:
            raise Forbidden(
                f"user {self.name!r} is a member of no project",
                hint="ask an administrator to add you to a project",
            )
        raise ServiceError(
            "which project? you are a member of several",
            hint=f"add ?project=NAME; yours: {', '.join(sorted(self.roles))}",
            status=422,
            field="project",
        )


class Authenticator:
    """Bearer credential -> Principal. With ``cache_ttl`` > 0, a credential seen valid is
    trusted again without the database for up to that many seconds (never past its own
    expiry): a revocation or membership change takes effect within ``cache_ttl``. With 0,
    every request reads the database (one query) and takes effect at once."""

    def __init__(
        self,
        db: ServiceDb,
        access_tokens: AccessTokens,
        *,
        cache_ttl: float = 0.0,
        cache_size: int = 4096,
    ) -> None:
        self._db = db
        self._tokens = access_tokens
        self._ttl = cache_ttl
        self._size = cache_size
        # sha256(Authorization header) -> (trusted until, principal); the header holds the
        # whole secret, so a wrong secret is another key and never hits.
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    def cached(self, authorization: str | None, *, now: float) -> Principal | None:
        """The principal of a credential validated less than ``cache_ttl`` ago, else None
        (then ``authenticate``, which reads the database). No I/O: safe on the event loop."""
        if not self._ttl or not authorization:
            return None
        hit = self._cache.get(_cache_key(authorization))
        return hit[1] if hit is not None and now < hit[0] else None

    def authenticate(self, authorization: str | None, *, now: float) -> Principal:
        hit = self.cached(authorization, now=now)
        if hit is not None:
            return hit
        principal, expires_at = self._authenticate(authorization, now)
        if self._ttl and authorization:
            if len(self._cache) >= self._size:
                self._cache.clear()  # rare (many distinct credentials): start over
            until = now + self._ttl
            if expires_at is not None:
                until = min(until, expires_at)
            self._cache[_cache_key(authorization)] = (until, principal)
        return principal

    def _authenticate(
        self, authorization: str | None, now: float
    ) -> tuple[Principal, float | None]:
        if not authorization:
            raise AuthError(
                "this request needs a bearer token",
                hint="send `Authorization: Bearer <token>` (an API token, or an access token "
                "from POST /oauth2/token)",
            )
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError(
                "the Authorization header must be `Bearer <token>`",
                hint="other schemes (Basic, ...) are not accepted",
            )
        if credential.startswith(TOKEN_PREFIX):
            return self._api_token(credential, now)
        return self._access_token(credential, now)

    def _api_token(self, credential: str, now: float) -> tuple[Principal, float | None]:
        token_id, secret = split_api_token(credential)
        found = self._db.accounts.token_access(token_id)
        if found is None or not secret_matches(secret, found.credential.secret_hash):
            raise AuthError("unknown API token", hint="check the token, or ask for a new one")
        token = found.credential
        if token.revoked_at is not None:
            raise AuthError(f"API token {token_id} has been revoked", hint="ask for a new one")
        if not token.usable(now):
            raise AuthError(f"API token {token_id} has expired", hint="ask for a new one")
        who = _principal(found, token.user, token.project, token.scopes, f"token:{token_id}")
        return who, token.expires_at

    def _access_token(self, credential: str, now: float) -> tuple[Principal, float | None]:
        claims = self._tokens.verify(credential, now=now)
        found = self._db.accounts.client_access(claims.client_id, claims.user)
        if found is None or found.credential.revoked_at is not None:
            raise AuthError(
                f"the client {claims.client_id} of this access token has been revoked",
                hint="register a new client with `hexflow admin client create`",
            )
        who = _principal(
            found, claims.user, claims.project, claims.scopes, f"client:{claims.client_id}"
        )
        return who, claims.expires_at


def _cache_key(authorization: str) -> bytes:
    return hashlib.sha256(authorization.encode()).digest()


def _principal(
    found: Access[Any],
    user_name: str,
    project: str | None,
    scopes: frozenset[Scope],
    credential: str,
) -> Principal:
    if found.user is None:
        raise AuthError(f"the user {user_name!r} of this credential no longer exists")
    roles = found.roles
    if project is not None:
        roles = {p: r for p, r in roles.items() if p == project}
    return Principal(
        user=found.user, roles=roles, scopes=scopes, credential=credential, bound_project=project
    )
