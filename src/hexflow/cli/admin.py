"""``hexflow admin``: users, projects, API tokens and OAuth clients of service mode, on the
server's database (``--db``/``HEXFLOW_DB``, as for ``hexflow server``).

Secrets (tokens, client private keys) are printed once and never stored. Exit codes: 0
success, 2 bad input (unknown user or project, bad scope, name taken), 3 store error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hexflow.cli.render import print_json
from hexflow.errors import HexflowError, StoreError
from hexflow.model.access import Role, parse_role, parse_scopes
from hexflow.model.resources import parse_duration
from hexflow.settings import Settings

if TYPE_CHECKING:
    from hexflow.service import Admin

T = TypeVar("T")

admin_app = typer.Typer(
    help="Administer service mode on the server's database: users, projects, API tokens, "
    "OAuth clients, the audit log.",
    no_args_is_help=True,
)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
project_app = typer.Typer(help="Projects and their members.", no_args_is_help=True)
token_app = typer.Typer(help="Long-lived API tokens (bearer).", no_args_is_help=True)
client_app = typer.Typer(help="OAuth2 clients (private_key_jwt).", no_args_is_help=True)
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(project_app, name="project")
admin_app.add_typer(token_app, name="token")
admin_app.add_typer(client_app, name="client")

_err = Console(stderr=True, soft_wrap=True)
_out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
UserOpt = Annotated[str, typer.Option("--user", help="The user it acts as.")]
ProjectOpt = Annotated[
    str | None, typer.Option("--project", help="The one project it reaches (default: all).")
]
ExpiresOpt = Annotated[
    str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h (default: none).")
]


@contextmanager
def _admin(ctx: typer.Context) -> Iterator[Admin]:
    from hexflow.service import Admin  # imported on use: keeps `hexflow --help` fast
    from hexflow.store.service_db import ServiceDb

    settings: Settings = ctx.obj
    if not settings.home.exists():  # as make_store: the home is its owner's only
        settings.home.mkdir(mode=0o700, parents=True)
    db = _guard(lambda: ServiceDb(settings.db_url))
    try:
        yield Admin(db)
    finally:
        db.close()


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except HexflowError as exc:
        _err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            _err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        raise typer.Exit(3 if isinstance(exc, StoreError) else 2) from None


def _expiry(text: str | None) -> float | None:
    return _guard(lambda: parse_duration(text, "expires")) if text else None


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in rows[0] if rows else ["(none)"]:
        table.add_column(col)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row.values()))
    return table


def _show(data: Any, as_json: bool, text: str) -> None:
    print_json(data) if as_json else _out.print(text, highlight=False)


# ---------------------------------------------------------------------- users
@user_app.command("create")
def user_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name (letters, digits, _ . -).")],
    site_admin: Annotated[
        bool, typer.Option("--admin", help="A site administrator (reads every audit entry).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a user."""
    with _admin(ctx) as admin:
        user = _guard(lambda: admin.create_user(name, is_admin=site_admin))
    _show({"name": user.name, "admin": user.is_admin}, as_json, f"created user {user.name}")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List users and their projects."""
    with _admin(ctx) as admin:
        db = admin.db
        rows = [
            {
                "name": u.name,
                "admin": u.is_admin,
                "projects": ", ".join(
                    f"{p}:{r.value}" for p, r in db.accounts.roles_of(u.name).items()
                ),
            }
            for u in _guard(db.accounts.list_users)
        ]
    print_json(rows) if as_json else _out.print(_table("users", rows))


# ---------------------------------------------------------------------- projects
def _member(text: str) -> tuple[str, Role]:
    user, _, role = text.partition(":")
    return user, _guard(lambda: parse_role(role or "member"))


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    member: Annotated[
        list[str] | None,
        typer.Option("--member", "-m", help="USER or USER:ROLE (admin, member, viewer); repeat."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the project is.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a project with its first members."""
    members = [_member(m) for m in member or []]
    with _admin(ctx) as admin:
        project = _guard(lambda: admin.create_project(name, members, description=description))
    data = {"name": project.name, "members": {u: r.value for u, r in members}}
    _show(data, as_json, f"created project {project.name} ({len(members)} member(s))")


@project_app.command("add-member")
def project_add_member(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    user: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="admin, member or viewer.")] = "member",
    as_json: JsonOpt = False,
) -> None:
    """Add a user to a project, or change the role the user has there."""
    parsed = _guard(lambda: parse_role(role))
    with _admin(ctx) as admin:
        m = _guard(lambda: admin.set_member(project, user, parsed))
    data = {"project": m.project, "user": m.user, "role": m.role.value}
    _show(data, as_json, f"{m.user} is {m.role.value} of {m.project}")


# ---------------------------------------------------------------------- tokens
@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: UserOpt,
    project: ProjectOpt = None,
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, submit, invoke, admin.")
    ] = "read",
    expires: ExpiresOpt = None,
    label: Annotated[str, typer.Option(help="A note on what the token is for.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an API token and print it (once: only a hash is kept)."""
    parsed = _guard(lambda: parse_scopes(scopes))
    lifetime = _expiry(expires)
    with _admin(ctx) as admin:
        new = _guard(
            lambda: admin.create_token(user, project, parsed, expires_in=lifetime, label=label)
        )
    t = new.token
    scope_names = sorted(s.value for s in t.scopes)
    data = {
        "id": t.id,
        "token": new.secret,
        "user": t.user,
        "project": t.project,
        "scopes": scope_names,
        "expires_at": t.expires_at,
    }
    if as_json:
        print_json(data)
    else:
        _out.print(f"token {t.id} for {t.user} ({', '.join(scope_names)}):", highlight=False)
        print(new.secret)
        _err.print("[yellow]this is the only time the token is shown: store it now[/]")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The token's id.")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API token (takes effect on the next request)."""
    with _admin(ctx) as admin:
        t = _guard(lambda: admin.revoke_token(_token_id(token_id)))
    _show({"id": t.id, "revoked_at": t.revoked_at}, as_json, f"revoked token {t.id}")


def _token_id(text: str) -> str:
    """A token id, or the id inside a whole ``hxt_<id>_<secret>`` token."""
    parts = text.split("_")
    return parts[1] if len(parts) >= 3 and parts[0] == "hxt" else text


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (never their secrets)."""
    with _admin(ctx) as admin:
        db = admin.db
        tokens = _guard(lambda: db.accounts.list_tokens(user))
    rows = [
        {
            "id": t.id,
            "user": t.user,
            "project": t.project,
            "scopes": " ".join(sorted(s.value for s in t.scopes)),
            "expires_at": t.expires_at,
            "revoked_at": t.revoked_at,
            "label": t.label,
        }
        for t in tokens
    ]
    print_json(rows) if as_json else _out.print(_table("API tokens", rows))


# ---------------------------------------------------------------------- clients
@client_app.command("create")
def client_create(
    ctx: typer.Context,
    user: UserOpt,
    project: ProjectOpt = None,
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = "read,submit",
    public_key: Annotated[
        Path | None,
        typer.Option(help="Register this public key (PEM or JWK) instead of making a key pair."),
    ] = None,
    name: Annotated[str, typer.Option(help="A name for the client.")] = "",
    expires: ExpiresOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an OAuth client; prints its id and (once) its new private key."""
    parsed = _guard(lambda: parse_scopes(scopes))
    lifetime = _expiry(expires)
    key_text = _guard(lambda: _read_key(public_key)) if public_key else None
    with _admin(ctx) as admin:
        new = _guard(
            lambda: admin.create_client(
                user, project, parsed, public_key=key_text, name=name, expires_in=lifetime
            )
        )
    c = new.client
    data = {
        "client_id": c.client_id,
        "private_key_pem": new.private_key_pem,
        "jwk": new.private_jwk,
        "public_jwk": new.public_jwk,
        "user": c.user,
        "project": c.project,
        "scopes": sorted(s.value for s in c.scopes),
        "expires_at": c.expires_at,
    }
    if as_json:
        print_json(data)
        return
    _out.print(f"client id: {c.client_id}", highlight=False)
    if new.private_key_pem:
        print(new.private_key_pem, end="")
        _err.print("[yellow]this is the only time the private key is shown: store it now[/]")


def _read_key(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        from hexflow.errors import SpecError

        raise SpecError(f"cannot read {path}: {exc.strerror}", field="public_key") from None


@client_app.command("revoke")
def client_revoke(
    ctx: typer.Context,
    client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an OAuth client: its access tokens stop working at once."""
    with _admin(ctx) as admin:
        c = _guard(lambda: admin.revoke_client(client_id))
    data = {"client_id": c.client_id, "revoked_at": c.revoked_at}
    _show(data, as_json, f"revoked client {c.client_id}")


@client_app.command("list")
def client_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List OAuth clients."""
    with _admin(ctx) as admin:
        db = admin.db
        clients = _guard(db.accounts.list_clients)
    rows = [
        {
            "client_id": c.client_id,
            "user": c.user,
            "project": c.project,
            "scopes": " ".join(sorted(s.value for s in c.scopes)),
            "revoked_at": c.revoked_at,
            "name": c.name,
        }
        for c in clients
    ]
    print_json(rows) if as_json else _out.print(_table("OAuth clients", rows))


# ---------------------------------------------------------------------- audit
@admin_app.command("audit")
def audit(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    limit: Annotated[int, typer.Option(help="How many entries.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show the newest audit entries (every project)."""
    with _admin(ctx) as admin:
        db = admin.db
        entries = _guard(lambda: db.log.entries(projects=None, project=project, limit=limit))
    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "project": e.project,
            "action": e.action,
            "target": e.target,
            "outcome": e.outcome,
            "status": e.status,
            "source": e.source,
            "detail": e.detail,
        }
        for e in entries
    ]
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            row["at"] = dt.datetime.fromtimestamp(row["at"]).strftime("%Y-%m-%d %H:%M:%S")
        _out.print(_table("audit log", rows))
