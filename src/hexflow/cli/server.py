"""``hexflow server``: the service (REST API, OAuth2 token endpoint, run manager, metrics)
on uvicorn. SQLite in --home by default; ``--db postgresql+psycopg://...`` for PostgreSQL."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hexflow.errors import HexflowError, SpecError
from hexflow.settings import Settings

_err = Console(stderr=True, soft_wrap=True)


def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy URL of the database (default: --db of hexflow)."),
    ] = None,
    max_runs: Annotated[
        int, typer.Option("--max-runs", min=1, help="Runs driven at once; more wait queued.")
    ] = 4,
    token_url: Annotated[
        list[str] | None,
        typer.Option(
            "--token-url",
            help="Public URL of /oauth2/token that client assertions name as audience "
            "(repeat for aliases; default: the URL a request came to).",
        ),
    ] = None,
    token_ttl: Annotated[
        int, typer.Option(min=120, help="Seconds an OAuth access token lives.")
    ] = 600,
    auth_cache: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds a validated credential is trusted without a database check: how "
            "late a revocation or membership change may take effect (0: at once).",
        ),
    ] = 1.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    python_workflows: Annotated[
        bool,
        typer.Option(
            "--python-workflows/--no-python-workflows",
            help="Accept Python workflows from the SDK (their code runs as this server's user).",
        ),
    ] = True,
    sfapi_machine: Annotated[
        list[str] | None,
        typer.Option(
            "--sfapi-machine",
            help="SFAPI machine name and the site it maps to, NAME=SITE (repeat; default "
            "perlmutter=local).",
        ),
    ] = None,
    sfapi_endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--sfapi-endpoint",
            help="SFAPI Globus endpoint and what it reaches, NAME=files (the project "
            "directories) or NAME=TIER[@SITE] (repeat; default: the machines and dtn are "
            "files, each local tier is its name).",
        ),
    ] = None,
    outages: Annotated[
        Path | None,
        typer.Option(help="JSON file of announced site outages (docs/service.md)."),
    ] = None,
    storage: Annotated[
        Path | None,
        typer.Option(
            envvar="HEXFLOW_STORAGE",
            help="Storage tiers and quotas (docs/data.md; default: $HEXFLOW_HOME/storage.yaml).",
        ),
    ] = None,
    shutdown_grace: Annotated[
        int,
        typer.Option(
            "--shutdown-grace",
            min=0,
            help="Seconds a stopping server lets requests in flight finish (long polls of "
            "`hexflow events --follow`, event streams) before it closes them (0: no bound).",
        ),
    ] = 5,
    lifecycle_interval: Annotated[
        float,
        typer.Option(
            "--lifecycle-interval",
            min=0,
            help="Seconds between two passes of the storage settings' lifecycle rules, each "
            "action audited (0: never; `hexflow data lifecycle` applies them by hand).",
        ),
    ] = 3600.0,
    callback_host: Annotated[
        list[str] | None,
        typer.Option(
            "--callback-host",
            help="A host asynchronous invocations may name in callback URLs (repeat; "
            "*.example.org for its subdomains; default: none, callbacks are refused).",
        ),
    ] = None,
    event_retention: Annotated[
        str,
        typer.Option(
            "--event-retention",
            help="How long to keep events every consumer has handled, e.g. 30d, 12h, 3600 "
            "(0: keep every event; a reader asking for a pruned offset gets 410).",
        ),
    ] = "0",
) -> None:
    """Start the hexflow service: REST API under /api/v1, OAuth2 at /oauth2/token, API docs
    at /docs, Prometheus metrics at /metrics. Runs left unfinished by a previous server are
    resumed. Create users, projects and tokens with `hexflow admin`."""
    import uvicorn

    from hexflow.data import load_storage
    from hexflow.events import EventsConfig
    from hexflow.service import ServiceConfig
    from hexflow.service.api import create_app
    from hexflow.service.sites import load_outages

    settings: Settings = ctx.obj
    if db:
        settings = dataclasses.replace(settings, db_url=db)
    try:
        config = ServiceConfig(
            settings=settings,
            access_token_ttl=token_ttl,
            auth_cache_ttl=auth_cache,
            max_parallel_runs=max_runs,
            token_urls=tuple(token_url or ()),
            python_workflows=python_workflows,
            sfapi_machines=_machines(sfapi_machine) or ServiceConfig.sfapi_machines,
            sfapi_endpoints=_pairs(sfapi_endpoint, "--sfapi-endpoint", "dtn=files") or None,
            outages=load_outages(outages.read_text(), str(outages)) if outages else (),
            storage=load_storage(settings.home, storage),
            freeze_gc=True,
            lifecycle_interval=lifecycle_interval,
            events=EventsConfig(
                callback_hosts=tuple(callback_host or ()),
                retention=_retention(event_retention),
            ),
        )
        app = create_app(config)
    except HexflowError as exc:
        _err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    _err.print(f"hexflow server on http://{host}:{port} (API docs at /docs)", highlight=False)
    # Everything loaded so far (modules, classes, the app) lives as long as the server: kept
    # out of the cyclic garbage collector's full passes, which otherwise walk it all
    # (~100 ms every few seconds under load: the tail of the gateway's latency).
    gc.collect()
    gc.freeze()
    config_ = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=shutdown_grace or None,
    )

    class StoppingServer(uvicorn.Server):
        """On SIGTERM/SIGINT, long polls and event streams answer at once (their clients
        see the end and reconnect) instead of holding the shutdown for their wait."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            service = getattr(app.state, "service", None)
            if service is not None:
                service.events.bus.release_waiters()
            super().handle_exit(sig, frame)

    StoppingServer(config_).run()


def _machines(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    return _pairs(items, "--sfapi-machine", "perlmutter=local")


def _pairs(items: list[str] | None, option: str, example: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SpecError(f"{option} {item!r}: expected NAME=VALUE, e.g. {example}")
        out.append((name, value))
    return tuple(out)


def _retention(value: str) -> float:
    """Seconds from ``--event-retention`` (``30d``, ``12h``, ``90m``, ``3600``, ``0``)."""
    from hexflow.errors import SpecError
    from hexflow.model.resources import parse_duration

    text = value.strip().lower()
    if text in ("0", "0s", "0.0"):
        return 0.0
    days = text[:-1] if text.endswith("d") else None
    try:
        seconds = float(days) * 86400 if days is not None else parse_duration(text, "x") or 0.0
    except (SpecError, ValueError):
        raise typer.BadParameter(
            f"{value!r} is not a duration: write 30d, 12h, 90m or seconds",
            param_hint="--event-retention",
        ) from None
    if seconds < 0:
        raise typer.BadParameter("a retention is 0 or more", param_hint="--event-retention")
    return seconds
