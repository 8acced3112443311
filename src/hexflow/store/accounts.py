"""Accounts: users, projects, memberships, API tokens and OAuth clients in the database.

Secrets never reach this module: tokens arrive with the hash of their secret, clients with
their public key. Everything is written in one transaction per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import exists, insert, select, update

from hexflow.errors import Conflict, NotFound
from hexflow.model.access import (
    ApiToken,
    Membership,
    OAuthClient,
    Project,
    Role,
    User,
    format_scopes,
    parse_scopes,
)
from hexflow.store.service_schema import (
    api_tokens,
    memberships,
    oauth_clients,
    projects,
    user_groups,
    users,
)

if TYPE_CHECKING:
    from hexflow.store.service_db import ServiceDb


class Accounts:
    def __init__(self, db: ServiceDb) -> None:
        self._db = db

    # ------------------------------------------------------------------ users
    def create_user(self, name: str, *, is_admin: bool, now: float) -> User:
        user = User(name=name, is_admin=is_admin, created_at=now)
        with self._db.write(conflict=f"user {name!r} exists already") as conn:
            conn.execute(insert(users).values(name=name, is_admin=is_admin, created_at=now))
        return user

    def get_user(self, name: str) -> User | None:
        with self._db.read() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        return User(row.name, bool(row.is_admin), row.created_at) if row else None

    def list_users(self) -> list[User]:
        with self._db.read() as conn:
            rows = conn.execute(select(users).order_by(users.c.name))
            return [User(r.name, bool(r.is_admin), r.created_at) for r in rows]

    # ------------------------------------------------------------------ projects
    def create_project(
        self, name: str, *, description: str, members: Sequence[tuple[str, Role]], now: float
    ) -> Project:
        """The project and its first members, all or nothing."""
        self._require_users([user for user, _ in members])
        with self._db.write(conflict=f"project {name!r} exists already") as conn:
            if conn.execute(select(exists().where(user_groups.c.name == name))).scalar():
                raise Conflict(
                    f"the name {name!r} is taken by a group",
                    hint="group and project names share one namespace; pick another name",
                )
            conn.execute(
                insert(projects).values(name=name, description=description, created_at=now)
            )
            for user, role in dict(members).items():
                conn.execute(
                    insert(memberships).values(
                        user_name=user, project_name=name, role=role.value, created_at=now
                    )
                )
        return Project(name, description, now)

    def get_project(self, name: str) -> Project | None:
        with self._db.read() as conn:
            row = conn.execute(select(projects).where(projects.c.name == name)).first()
        return Project(row.name, row.description, row.created_at) if row else None

    def list_projects(self) -> list[Project]:
        with self._db.read() as conn:
            rows = conn.execute(select(projects).order_by(projects.c.name))
            return [Project(r.name, r.description, r.created_at) for r in rows]

    def set_member(self, user: str, project: str, role: Role, *, now: float) -> Membership:
        """Add ``user`` to ``project`` with ``role``, or change the role it has there."""
        self._require_users([user])
        if self.get_project(project) is None:
            raise NotFound(f"no project {project!r}", hint="create it with `admin project create`")
        with self._db.write() as conn:
            done = conn.execute(
                update(memberships)
                .where(memberships.c.user_name == user, memberships.c.project_name == project)
                .values(role=role.value)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(memberships).values(
                        user_name=user, project_name=project, role=role.value, created_at=now
                    )
                )
        return Membership(user, project, role)

    def roles_of(self, user: str) -> dict[str, Role]:
        """The projects ``user`` is a member of, with the role held in each."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(memberships.c.project_name, memberships.c.role).where(
                    memberships.c.user_name == user
                )
            )
            return {r.project_name: Role(r.role) for r in rows}

    def members_of(self, project: str) -> list[Membership]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(memberships)
                .where(memberships.c.project_name == project)
                .order_by(memberships.c.user_name)
            )
            return [Membership(r.user_name, r.project_name, Role(r.role)) for r in rows]

    def _require_users(self, names: Sequence[str]) -> None:
        for name in names:
            if self.get_user(name) is None:
                raise NotFound(f"no user {name!r}", hint="create it with `admin user create`")

    def _require_member(self, user: str, project: str | None) -> None:
        self._require_users([user])
        if project is None:
            return
        if self.get_project(project) is None:
            raise NotFound(f"no project {project!r}", hint="create it with `admin project create`")
        if project not in self.roles_of(user):
            raise NotFound(
                f"user {user!r} is not a member of project {project!r}",
                hint="add the user with `admin project add-member`",
            )

    # ------------------------------------------------------------------ authentication
    def token_access(self, token_id: str) -> Access[ApiToken] | None:
        """The API token, its user and the user's roles, in one query (every request)."""
        query = (
            select(api_tokens, *_GRANT)
            .select_from(api_tokens)
            .outerjoin(users, users.c.name == api_tokens.c.user_name)
            .outerjoin(memberships, memberships.c.user_name == api_tokens.c.user_name)
            .where(api_tokens.c.id == token_id)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return Access(_token(rows[0]._mapping), *_grant(rows)) if rows else None

    def client_access(self, client_id: str, user: str) -> Access[OAuthClient] | None:
        """The OAuth client, and ``user`` (the access token's) with its roles, in one query."""
        query = (
            select(oauth_clients, *_GRANT)
            .select_from(oauth_clients)
            .outerjoin(users, users.c.name == user)
            .outerjoin(memberships, memberships.c.user_name == user)
            .where(oauth_clients.c.client_id == client_id)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return Access(_client(rows[0]._mapping), *_grant(rows)) if rows else None

    # ------------------------------------------------------------------ API tokens
    def add_token(self, token: ApiToken) -> None:
        self._require_member(token.user, token.project)
        with self._db.write(conflict=f"token id {token.id} exists already") as conn:
            conn.execute(
                insert(api_tokens).values(
                    id=token.id,
                    user_name=token.user,
                    project_name=token.project,
                    scopes=format_scopes(token.scopes),
                    secret_hash=token.secret_hash,
                    label=token.label,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                )
            )

    def get_token(self, token_id: str) -> ApiToken | None:
        with self._db.read() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return _token(row._mapping) if row else None

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        query = select(api_tokens).order_by(api_tokens.c.created_at)
        if user is not None:
            query = query.where(api_tokens.c.user_name == user)
        with self._db.read() as conn:
            return [_token(r._mapping) for r in conn.execute(query)]

    def revoke_token(self, token_id: str, *, now: float) -> ApiToken:
        with self._db.write() as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        token = self.get_token(token_id)
        if token is None:
            raise NotFound(f"no API token {token_id!r}", hint="`admin token list` shows them")
        return token

    # ------------------------------------------------------------------ OAuth clients
    def add_client(self, client: OAuthClient) -> None:
        self._require_member(client.user, client.project)
        with self._db.write(conflict=f"client id {client.client_id} exists already") as conn:
            conn.execute(
                insert(oauth_clients).values(
                    client_id=client.client_id,
                    user_name=client.user,
                    project_name=client.project,
                    scopes=format_scopes(client.scopes),
                    public_jwk=client.public_jwk,
                    name=client.name,
                    created_at=client.created_at,
                    expires_at=client.expires_at,
                    revoked_at=client.revoked_at,
                )
            )

    def get_client(self, client_id: str) -> OAuthClient | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(oauth_clients).where(oauth_clients.c.client_id == client_id)
            ).first()
        return _client(row._mapping) if row else None

    def list_clients(self, user: str | None = None) -> list[OAuthClient]:
        query = select(oauth_clients).order_by(oauth_clients.c.created_at)
        if user is not None:
            query = query.where(oauth_clients.c.user_name == user)
        with self._db.read() as conn:
            return [_client(r._mapping) for r in conn.execute(query)]

    def revoke_client(self, client_id: str, *, now: float) -> OAuthClient:
        with self._db.write() as conn:
            conn.execute(
                update(oauth_clients)
                .where(oauth_clients.c.client_id == client_id, oauth_clients.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        client = self.get_client(client_id)
        if client is None:
            raise NotFound(f"no OAuth client {client_id!r}", hint="`admin client list` shows them")
        return client


C = TypeVar("C", ApiToken, OAuthClient)


@dataclass(frozen=True, slots=True)
class Access(Generic[C]):
    """A credential as stored, its user (None: deleted) and the user's role per project."""

    credential: C
    user: User | None
    roles: dict[str, Role]


_GRANT = (
    users.c.name.label("u_name"),
    users.c.is_admin.label("u_is_admin"),
    users.c.created_at.label("u_created_at"),
    memberships.c.project_name.label("m_project"),
    memberships.c.role.label("m_role"),
)


def _grant(rows: Sequence[Any]) -> tuple[User | None, dict[str, Role]]:
    first = rows[0]
    if first.u_name is None:
        return None, {}
    user = User(first.u_name, bool(first.u_is_admin), first.u_created_at)
    return user, {r.m_project: Role(r.m_role) for r in rows if r.m_project is not None}


def _token(row: Any) -> ApiToken:
    return ApiToken(
        id=row["id"],
        user=row["user_name"],
        project=row["project_name"],
        scopes=parse_scopes(row["scopes"]),
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        label=row["label"] or "",
    )


def _client(row: Any) -> OAuthClient:
    return OAuthClient(
        client_id=row["client_id"],
        user=row["user_name"],
        project=row["project_name"],
        scopes=parse_scopes(row["scopes"]),
        public_jwk=row["public_jwk"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        name=row["name"] or "",
    )
