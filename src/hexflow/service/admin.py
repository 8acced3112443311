"""Administration of service mode (``hexflow admin``): users, projects and members, API
tokens and OAuth clients, on the server's database. Every change is audited with the
operator as ``cli:<os user>``. Secrets are returned once and never stored."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hexflow.model.access import (
    ApiToken,
    Membership,
    OAuthClient,
    Project,
    Role,
    Scope,
    User,
    check_name,
)
from hexflow.service.audit import Audit
from hexflow.service.keys import new_client_key, parse_public_key
from hexflow.service.tokens import new_api_token, new_client_id
from hexflow.store.service_db import ServiceDb


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole bearer token, shown once


@dataclass(frozen=True)
class NewClient:
    client: OAuthClient
    private_key_pem: str | None  # None when the operator gave the public key
    private_jwk: dict[str, Any] | None  # the same private key as a JWK (sfapi_client's .json)
    public_jwk: dict[str, Any]


class Admin:
    def __init__(
        self, db: ServiceDb, *, actor: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db  # for listings, which are not audited
        self._db = db
        self._now = clock
        self.actor = actor or f"cli:{_os_user()}"
        self._audit = Audit(db, clock)

    def create_user(self, name: str, *, is_admin: bool = False) -> User:
        with self._audit.action(self.actor, "user.create", target=name):
            return self._db.accounts.create_user(
                check_name(name, "user"), is_admin=is_admin, now=self._now()
            )

    def create_project(
        self, name: str, members: Sequence[tuple[str, Role]], *, description: str = ""
    ) -> Project:
        with self._audit.action(self.actor, "project.create", project=name, target=name) as note:
            note.detail = ", ".join(f"{u}:{r.value}" for u, r in members) or None
            return self._db.accounts.create_project(
                check_name(name, "project"),
                description=description,
                members=members,
                now=self._now(),
            )

    def set_member(self, project: str, user: str, role: Role) -> Membership:
        with self._audit.action(self.actor, "project.member", project=project, target=user) as note:
            note.detail = role.value
            return self._db.accounts.set_member(user, project, role, now=self._now())

    def create_token(
        self,
        user: str,
        project: str | None,
        scopes: frozenset[Scope],
        *,
        expires_in: float | None = None,
        label: str = "",
    ) -> NewToken:
        with self._audit.action(self.actor, "token.create", project=project) as note:
            token_id, secret, secret_hash = new_api_token()
            now = self._now()
            token = ApiToken(
                id=token_id,
                user=user,
                project=project,
                scopes=scopes,
                secret_hash=secret_hash,
                created_at=now,
                expires_at=now + expires_in if expires_in else None,
                label=label,
            )
            note.target = token_id
            note.detail = f"user {user}, scopes {' '.join(sorted(s.value for s in scopes))}"
            self._db.accounts.add_token(token)
            return NewToken(token, secret)

    def revoke_token(self, token_id: str) -> ApiToken:
        with self._audit.action(self.actor, "token.revoke", target=token_id) as note:
            token = self._db.accounts.revoke_token(token_id, now=self._now())
            note.project = token.project
            return token

    def create_client(
        self,
        user: str,
        project: str | None,
        scopes: frozenset[Scope],
        *,
        public_key: str | None = None,
        name: str = "",
        expires_in: float | None = None,
    ) -> NewClient:
        with self._audit.action(self.actor, "client.create", project=project) as note:
            private_pem: str | None = None
            private_jwk: dict[str, Any] | None = None
            if public_key is None:
                private_pem, private_jwk, jwk = new_client_key()
            else:
                jwk = parse_public_key(public_key)
            now = self._now()
            client = OAuthClient(
                client_id=new_client_id(),
                user=user,
                project=project,
                scopes=scopes,
                public_jwk=json.dumps(jwk, sort_keys=True),
                created_at=now,
                expires_at=now + expires_in if expires_in else None,
                name=name,
            )
            note.target = client.client_id
            note.detail = f"user {user}, scopes {' '.join(sorted(s.value for s in scopes))}"
            self._db.accounts.add_client(client)
            return NewClient(client, private_pem, private_jwk, jwk)

    def revoke_client(self, client_id: str) -> OAuthClient:
        with self._audit.action(self.actor, "client.revoke", target=client_id) as note:
            client = self._db.accounts.revoke_client(client_id, now=self._now())
            note.project = client.project
            return client


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
