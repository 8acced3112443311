"""``hexflow sites``: each site's state (up, degraded, down) and why; ``set``/``clear`` an
administrator's override, which every engine and server of this home obeys within one
check interval (docs/sites.md)."""

from __future__ import annotations

import getpass
import time
from typing import Annotated, Any

import typer

from hexflow.cli.common import JsonOpt, out
from hexflow.cli.common import fail as _fail
from hexflow.cli.common import guard as _guard
from hexflow.cli.common import settings_of as _settings
from hexflow.cli.render import print_json
from hexflow.errors import SpecError

SITES_EPILOG = (
    "Examples:  hexflow sites  ·  hexflow sites --json  ·  "
    "hexflow sites set perlmutter down --reason 'file system trouble'  ·  "
    "hexflow sites clear perlmutter.  Sites come from the sites file (HEXFLOW_SITES); "
    "without one, the executor HEXFLOW_EXECUTOR chooses is the only site."
)

sites_app = typer.Typer(
    help="Where work runs: each site's state, from health checks, planned outages and "
    "administrators' overrides.",
    epilog=SITES_EPILOG,
    no_args_is_help=False,
    invoke_without_command=True,
)

_STYLE = {"up": "green", "degraded": "yellow", "down": "red"}


@sites_app.callback()
def sites(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the sites and their state now (health checks run as you ask)."""
    if ctx.invoked_subcommand is not None:
        return
    from hexflow.flow.sites import monitor

    settings = _settings(ctx)
    rows = _guard(lambda: monitor(settings).status(time.time()))
    if as_json:
        print_json(rows)
        return
    out.print(_table(rows))


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title=f"{len(rows)} site(s)")
    for col in ("site", "executor", "state", "why", "priority", "next outage"):
        table.add_column(col, overflow="fold")
    now = time.time()
    for r in rows:
        coming = [o for o in r["outages"] if o["status"] != "completed"]
        nxt = ""
        if coming:
            o = min(coming, key=lambda o: o["start"])
            when = "now" if o["status"] == "active" else f"in {_ago(o['start'] - now)}"
            nxt = f"{when}" + (f": {o['reason']}" if o["reason"] else "")
        state = r["state"]
        table.add_row(
            r["name"],
            r["executor"],
            f"[{_STYLE.get(state, 'white')}]{state}[/]",
            r["reason"],
            str(r["priority"]),
            nxt,
        )
    return table


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@sites_app.command("set")
def set_state(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(metavar="SITE")],
    state: Annotated[str, typer.Argument(metavar="STATE", help="up, degraded or down.")],
    reason: Annotated[str, typer.Option(help="Why (shown with the state).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Override a site's state until cleared: `down` moves its queued and running work to
    other sites; `up` ignores its health checks."""
    from hexflow.flow.sites import Overrides, sites_config
    from hexflow.model.sites import SiteState

    settings = _settings(ctx)
    _known(settings, site)
    try:
        wanted = SiteState(state.lower())
    except ValueError:
        _fail(SpecError(f"unknown site state {state!r}", hint="up, degraded or down"), 2)
    _guard(lambda: sites_config(settings))
    override = _guard(lambda: Overrides(settings.home).set(site, wanted, reason, _who()))
    result = {"site": site, "state": override.state.value, "reason": override.reason}
    if as_json:
        print_json(result)
    else:
        out.print(f"site {site} set {override.state.value}", highlight=False)


@sites_app.command("clear")
def clear(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(metavar="SITE")],
    as_json: JsonOpt = False,
) -> None:
    """Drop the override of a site: its health checks and outages decide again."""
    from hexflow.flow.sites import Overrides

    settings = _settings(ctx)
    _known(settings, site)
    cleared = _guard(lambda: Overrides(settings.home).clear(site))
    if as_json:
        print_json({"site": site, "cleared": cleared})
    else:
        out.print(f"site {site}: " + ("override cleared" if cleared else "had no override"))


def _known(settings: Any, site: str) -> None:
    from hexflow.flow.sites import sites_config

    config = _guard(lambda: sites_config(settings))
    _guard(lambda: config.get(site))


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container): leave it out
        return ""


__all__ = ["SITES_EPILOG", "sites_app"]
