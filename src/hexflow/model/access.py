"""Who may do what in service mode: users, projects, memberships, token scopes, audit entries.

Pure types and rules, no I/O. A request is allowed when the token carries the scope the
route needs *and* the user's role in the project allows that scope (``role_allows``). The
``admin`` scope includes the others; so does the ``admin`` role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hexflow.errors import SpecError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class Scope(StrEnum):
    READ = "read"  # list and inspect runs, tasks, logs
    SUBMIT = "submit"  # submit and cancel runs
    INVOKE = "invoke"  # invoke registered functions
    ADMIN = "admin"  # the audit log; implies the others


class Role(StrEnum):
    ADMIN = "admin"  # everything in the project, including its audit log
    MEMBER = "member"  # read, submit, invoke
    VIEWER = "viewer"  # read only


_ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.MEMBER: frozenset({Scope.READ, Scope.SUBMIT, Scope.INVOKE}),
    Role.VIEWER: frozenset({Scope.READ}),
}


def check_name(value: str, what: str) -> str:
    """A user or project name: a letter, then letters, digits, '_', '.', '-' (64 at most)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(
            f"bad {what} name {value!r}",
            hint="a name starts with a letter and holds only letters, digits, '_', '.', '-' "
            "(64 characters at most)",
            field=what,
        )
    return value


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scopes from ``"read,submit"``, ``"read submit"`` or a list; unknown names are errors."""
    words = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    out: set[Scope] = set()
    for word in words:
        try:
            out.add(Scope(word.strip().lower()))
        except ValueError:
            raise SpecError(
                f"unknown scope {word!r}",
                hint=f"scopes are {', '.join(s.value for s in Scope)}",
                field="scopes",
            ) from None
    if not out:
        raise SpecError(
            "no scope given", hint="give at least one, e.g. read,submit", field="scopes"
        )
    return frozenset(out)


def format_scopes(scopes: frozenset[Scope]) -> str:
    return " ".join(s.value for s in Scope if s in scopes)


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise SpecError(
            f"unknown role {text!r}",
            hint=f"roles are {', '.join(r.value for r in Role)}",
            field="role",
        ) from None


def has_scope(granted: frozenset[Scope], needed: Scope) -> bool:
    return needed in granted or Scope.ADMIN in granted


def role_allows(role: Role, needed: Scope) -> bool:
    return needed in _ROLE_SCOPES[role]


@dataclass(frozen=True, slots=True)
class User:
    name: str
    is_admin: bool = False  # a site administrator: may read every project's audit log
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Project:
    name: str
    description: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Membership:
    user: str
    project: str
    role: Role


@dataclass(frozen=True, slots=True)
class UserGroup:
    """A named set of users inside one project (the SFAPI facade's groups); its members
    are always members of the project too."""

    name: str
    project: str
    members: tuple[str, ...] = ()
    created_by: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A long-lived bearer token; only a hash of its secret is ever stored."""

    id: str
    user: str
    project: str | None  # None: every project the user is a member of
    scopes: frozenset[Scope]
    secret_hash: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    label: str = ""

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A client of the OAuth2 client-credentials flow (private_key_jwt): its public key."""

    client_id: str  # 13 characters, as sfapi_client requires
    user: str
    project: str | None
    scopes: frozenset[Scope]
    public_jwk: str  # JSON of the public JWK
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    name: str = ""

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str  # the user, or "cli:<os user>" for admin commands
    project: str | None
    action: str  # e.g. run.submit, run.cancel, token.create, oauth.token
    target: str  # the object acted on, e.g. a run id
    outcome: str  # ok, denied, error
    status: int | None = None  # the HTTP status of the answer, for API requests
    source: str | None = None  # the client address
    detail: str | None = None
