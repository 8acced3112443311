"""``hexflow services``: a project's long-lived containers on the service node (a database,
a Jupyter server, a broker) — start, stop, list, logs — on the server's database
(``--db``/``HEXFLOW_DB``, as ``hexflow admin``), run by the node's operator. The server's
supervisor health-checks and restarts them; ``/api/v1/services`` is the remote way.
Exit codes: 0 success, 2 bad input (name, image, port, project), 3 store error.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hexflow.cli.common import JsonOpt, out
from hexflow.cli.common import fail as _fail
from hexflow.cli.render import print_json
from hexflow.errors import HexflowError, NotFound, StoreError

if TYPE_CHECKING:
    from hexflow.service.containers import ServiceContainers

SERVICES_EPILOG = (
    "Examples:  hexflow services start logdb --image localhost/postgres:16 --port 5433:5432 "
    "--env POSTGRES_PASSWORD=x --health-tcp --project p1  ·  hexflow services list --json  ·  "
    "hexflow services logs logdb --project p1  ·  hexflow services stop logdb --project p1"
)

services_app = typer.Typer(
    help="Long-lived service containers of projects on the service node (podman).",
    epilog=SERVICES_EPILOG,
    no_args_is_help=True,
)

ProjectOpt = Annotated[str, typer.Option("--project", help="The project the service belongs to.")]


@contextmanager
def _containers(ctx: typer.Context, project: str | None = None) -> Iterator[ServiceContainers]:
    from hexflow.service.containers import ServiceContainers
    from hexflow.store.service_db import ServiceDb

    settings = ctx.obj
    try:
        if not settings.home.exists():
            settings.home.mkdir(mode=0o700, parents=True)
        db = ServiceDb(settings.db_url)
    except HexflowError as exc:
        _fail(exc, 3)
    try:
        if project is not None and db.accounts.get_project(project) is None:
            _fail(NotFound(f"no project {project!r}", hint="hexflow admin project list"), 2)
        roots = [str(r) for r in settings.allowed_mount_roots]
        yield ServiceContainers(db, mount_roots=roots)
    except HexflowError as exc:
        _fail(exc, 3 if isinstance(exc, StoreError) else 2)
    finally:
        db.close()


@services_app.command("start")
def start(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and '-'.")],
    image: Annotated[str, typer.Option("--image", help="An image podman has (never pulled).")],
    port: Annotated[str, typer.Option("--port", help="HOST_PORT[:CONTAINER_PORT] (127.0.0.1).")],
    project: ProjectOpt,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=VALUE (repeat).")] = None,
    mount: Annotated[
        list[str] | None, typer.Option("--mount", help="/host:/container[:ro|rw] (repeat).")
    ] = None,
    health_cmd: Annotated[
        str | None, typer.Option("--health-cmd", help="Run inside (sh -c); exit 0 is healthy.")
    ] = None,
    health_tcp: Annotated[
        bool, typer.Option("--health-tcp", help="Healthy when the port accepts a connection.")
    ] = False,
    command: Annotated[list[str] | None, typer.Argument(help="The command (after --).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a service container (detached, restarted on failure)."""
    from hexflow.executors.containers.services import make_spec
    from hexflow.service.containers import env_pairs

    with _containers(ctx, project) as services:
        spec = make_spec(
            project,
            name,
            image=image,
            port=port,
            env=env_pairs(env or []),
            mounts=tuple(mount or ()),
            command=tuple(command or ()),
            health_cmd=("sh", "-c", health_cmd) if health_cmd else (),
            health_tcp=health_tcp,
        )
        status = services.start_spec(spec, user=getpass.getuser())
    data = status.as_json()
    if as_json:
        print_json(data)
    else:
        out.print(f"started {name} ({data['container']}) on {data['url']}", highlight=False)


@services_app.command("stop")
def stop(ctx: typer.Context, name: str, project: ProjectOpt) -> None:
    """Stop and remove a service container."""
    with _containers(ctx, project) as services:
        services.stop_named(project, name)
    out.print(f"stopped {name}", highlight=False)


@services_app.command("list")
def list_services(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The services, with their state, health and restarts now."""
    with _containers(ctx, project) as services:
        rows = [s.as_json() for s in services.statuses([project] if project else None)]
    if as_json:
        print_json(rows)
        return
    table = Table(title="services")
    for col in ("project", "name", "image", "url", "state", "health", "restarts"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("project", "name", "image", "url")),
                      str(row["state"]), str(row["health"]), str(row["restarts"]))  # fmt: skip
    out.print(table)


@services_app.command("logs")
def logs(
    ctx: typer.Context,
    name: str,
    project: ProjectOpt,
    tail: Annotated[int, typer.Option("--tail", help="Lines from the end.")] = 200,
) -> None:
    """The service's output (stdout and stderr)."""
    with _containers(ctx, project) as services:
        text = services.logs(project, name, tail)
    out.print(text, end="", highlight=False, markup=False)
