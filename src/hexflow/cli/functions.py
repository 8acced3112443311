"""``hexflow functions``, ``hexflow triggers`` and ``hexflow events``: the function gateway,
triggers and the event log of a ``hexflow server`` (``--server URL``, token from the token
file), through the SDK's transport. Exit codes: 0 ok, 1 an invoked function failed, 2 bad
input (an option, a refused request: 4xx), 3 the server failed or cannot be reached.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hexflow.cli import remote
from hexflow.cli.common import JsonOpt, console, out
from hexflow.cli.render import print_json
from hexflow.errors import HexflowError, SpecError

if TYPE_CHECKING:
    from hexflow.client._http import Transport

functions_app = typer.Typer(
    help="Functions on a hexflow server: register (import path or source), list, invoke.",
    no_args_is_help=True,
)
triggers_app = typer.Typer(
    help="Triggers on a hexflow server: webhook, file, schedule and event rules.",
    no_args_is_help=True,
)

ProjectOpt = Annotated[
    str | None, typer.Option("--project", help="The project (default: your only one).")
]


# ---------------------------------------------------------------------- plumbing
def _transport(ctx: typer.Context, retries: int = 3) -> Transport:
    if not remote.wanted(ctx):
        _bad(
            "this command talks to a hexflow server",
            "pass --server URL (or set HEXFLOW_SERVER), e.g. hexflow --server "
            "http://127.0.0.1:8000 functions list",
        )
    from hexflow.client._http import Transport
    from hexflow.client.config import default_token_file, load_token

    server, token_file = ctx.meta[remote._KEY]
    token = _call(lambda: load_token(token_file or default_token_file()))
    return Transport(server, token, timeout=60.0, retries=retries)


def _call(fn: Any) -> Any:
    """Run a request: refused (4xx, bad input) exits 2; a failing or absent server exits 3."""
    try:
        return fn()
    except HexflowError as exc:
        status = exc.fields.get("status")
        code = (
            2
            if isinstance(exc, SpecError) or (isinstance(status, int) and 400 <= status < 500)
            else 3
        )
        if exc.fields.get("field") and exc.fields["field"] not in exc.message:
            exc.message += f" (field {exc.fields['field']})"
        console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        raise typer.Exit(code) from None


def _bad(message: str, hint: str | None = None) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    if hint:
        console.print(f"[yellow]hint:[/] {hint}", highlight=False)
    raise typer.Exit(2)


def _json_option(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        _bad(f"{option}: not valid JSON: {exc}", f"e.g. {option} '{{\"x\": 1}}'")
    if not isinstance(value, dict):
        _bad(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value  # type: ignore[no-any-return]


def _pairs(items: list[str], option: str, parse_json: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _bad(f"{option} {item!r}: expected KEY=VALUE")
        if parse_json:
            try:
                found[key] = json.loads(value)
            except ValueError:
                found[key] = value  # a bare word is a string
        else:
            found[key] = value
    return found


def _params(project: str | None, **more: Any) -> dict[str, Any]:
    return {k: v for k, v in {"project": project, **more}.items() if v is not None}


# ---------------------------------------------------------------------- functions
@functions_app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The name callers invoke it by.")],
    import_path: Annotated[
        str | None, typer.Option("--import-path", help="package.module:function")
    ] = None,
    source: Annotated[
        Path | None, typer.Option("--source", help="A Python file that defines the function.")
    ] = None,
    entrypoint: Annotated[
        str | None, typer.Option(help="The function in --source (default: NAME).")
    ] = None,
    env: Annotated[list[str], typer.Option("--env", help="KEY=VALUE (repeat).")] = [],  # noqa: B006
    cpus: Annotated[float, typer.Option(help="cpus of each worker")] = 1.0,
    timeout: Annotated[float, typer.Option(help="seconds one invocation may run")] = 60.0,
    min_workers: Annotated[int, typer.Option(help="warm workers kept")] = 1,
    max_workers: Annotated[int, typer.Option(help="most workers when calls queue")] = 4,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a function (a new version if NAME exists)."""
    if (import_path is None) == (source is None):
        _bad("give exactly one of --import-path and --source")
    body: dict[str, Any] = {
        "name": name,
        "env": _pairs(env, "--env", parse_json=False),
        "cpus": cpus,
        "timeout": timeout,
        "min_workers": min_workers,
        "max_workers": max_workers,
    }
    if import_path is not None:
        body["import_path"] = import_path
    else:
        assert source is not None
        try:
            body["source"] = source.read_text()
        except OSError as exc:
            _bad(f"--source {source}: {exc.strerror}")
        body["entrypoint"] = entrypoint
    t = _transport(ctx)
    fn = _call(
        lambda: t.request(
            "POST",
            "/api/v1/functions",
            params=_params(project),
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    )
    if as_json:
        print_json(fn)
        return
    args = ", ".join(fn["args_schema"].get("properties", {})) or "no arguments"
    out.print(f"registered {fn['project']}/{fn['name']} version {fn['version']} ({args})")


@functions_app.command("list")
def list_functions(
    ctx: typer.Context, project: ProjectOpt = None, as_json: JsonOpt = False
) -> None:
    """The functions of your projects (newest versions)."""
    t = _transport(ctx)
    items = _call(lambda: t.request("GET", "/api/v1/functions", params=_params(project)))["items"]
    if as_json:
        print_json(items)
        return
    from rich.table import Table

    table = Table("project", "name", "version", "target", "arguments", "timeout", "workers")
    for f in items:
        table.add_row(
            f["project"], f["name"], str(f["version"]), f["target"],
            ", ".join(f["args_schema"].get("properties", {})), f"{f['timeout']:g} s",
            f"{f['min_workers']}-{f['max_workers']}",
        )  # fmt: skip
    out.print(table)


@functions_app.command("invoke")
def invoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The function.")],
    arg: Annotated[
        list[str], typer.Option("--arg", help="KEY=VALUE, VALUE as JSON if it parses (repeat).")
    ] = [],  # noqa: B006
    args_json: Annotated[
        str | None, typer.Option("--args", help="All arguments as one JSON object.")
    ] = None,
    run_async: Annotated[
        bool, typer.Option("--async", help="Return the invocation id at once.")
    ] = False,
    wait: Annotated[float | None, typer.Option(help="Longest wait for the result (s).")] = None,
    version: Annotated[int | None, typer.Option(help="A version (default: newest).")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call a function; prints its result (exit 1 if it failed)."""
    args = {**_json_option(args_json, "--args"), **_pairs(arg, "--arg", parse_json=True)}
    params = _params(project, version=version, wait=wait, mode="async" if run_async else "sync")
    t = _transport(ctx, retries=0)  # a call is not idempotent: never sent twice
    inv = _call(
        lambda: t.request(
            "POST", f"/api/v1/functions/{name}/invoke", params=params,
            content=json.dumps(args).encode(), headers={"Content-Type": "application/json"},
        )
    )  # fmt: skip
    if as_json:
        print_json(inv)
    elif inv["state"] == "succeeded":
        out.print(json.dumps(inv["result"]), highlight=False)
    elif inv["state"] in ("queued", "running"):
        out.print(
            f"invocation {inv['id']} {inv['state']}: hexflow functions invocation {inv['id']}"
        )
    else:
        console.print(f"[bold red]{inv['state']}:[/] {inv['error']}", highlight=False)
        if inv.get("traceback"):
            console.print(inv["traceback"], highlight=False, markup=False)
    if inv["state"] in ("failed", "timed_out"):
        raise typer.Exit(1)


@functions_app.command("invocation")
def invocation(
    ctx: typer.Context,
    invocation_id: Annotated[str, typer.Argument(help="The id invoke printed.")],
    as_json: JsonOpt = False,
) -> None:
    """One invocation: state, result or error."""
    t = _transport(ctx)
    inv = _call(lambda: t.request("GET", f"/api/v1/invocations/{invocation_id}"))
    if as_json:
        print_json(inv)
        return
    out.print(f"{inv['id']} {inv['function']} v{inv['version']} {inv['state']}", highlight=False)
    if inv["state"] == "succeeded":
        out.print(json.dumps(inv["result"]), highlight=False)
    elif inv["error"]:
        out.print(inv["error"], highlight=False)


# ---------------------------------------------------------------------- triggers
@triggers_app.command("create")
def create_trigger(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="webhook, file, schedule, event or dataset")],
    function: Annotated[
        str, typer.Option("--function", help="The function it calls (or --workflow).")
    ] = "",
    workflow: Annotated[
        Path | None,
        typer.Option(
            "--workflow",
            help="A YAML workflow it submits instead, once per event; its params come from "
            "--args and the event's fields of the same names.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help='Settings as JSON, e.g. {"cron": "*/5 * * * *"}, '
            '{"path": "inbox", "marker": ".done"} or {"kinds": ["run.failed"]}'
        ),
    ] = None,
    args_json: Annotated[
        str | None,
        typer.Option("--args", help="Constant arguments (JSON); a workflow's: its params."),
    ] = None,
    name: Annotated[str, typer.Option(help="A name to list it by.")] = "",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a trigger that calls a function (--function) or submits a workflow
    (--workflow FILE.yaml) each time it fires. A webhook's secret is printed now and never
    again."""
    if bool(function) == (workflow is not None):
        raise typer.BadParameter(
            "give --function NAME or --workflow FILE (one of them)", param_hint="--function"
        )
    body: dict[str, Any] = {
        "kind": kind,
        "function": function,
        "name": name,
        "config": _json_option(config, "--config"),
        "args": _json_option(args_json, "--args"),
    }
    if workflow is not None:
        body["workflow"] = workflow.read_text(encoding="utf-8")
    t = _transport(ctx)
    created = _call(
        lambda: t.request(
            "POST", "/api/v1/triggers", params=_params(project), content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    )  # fmt: skip
    if as_json:
        print_json(created)
        return
    out.print(f"trigger {created['id']} ({created['kind']} -> {created['target']})")
    if created.get("secret"):
        out.print(f"hook URL: {t.url}{created['hook_url']}", highlight=False)
        out.print(f"secret:   {created['secret']}   <- shown once", highlight=False)


@triggers_app.command("list")
def list_triggers(ctx: typer.Context, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Triggers of your projects, with their last firings."""
    t = _transport(ctx)
    items = _call(lambda: t.request("GET", "/api/v1/triggers", params=_params(project)))["items"]
    if as_json:
        print_json(items)
        return
    from rich.table import Column, Table

    table = Table(
        Column("id", no_wrap=True, min_width=16),
        "project",
        Column("kind", no_wrap=True),
        "name",
        "runs",
        "fired",
        Column("last fired", no_wrap=True),
        "last error",
    )
    for tr in items:
        last = tr["last_fired_at"]
        when = time.strftime("%H:%M:%S", time.localtime(last)) if last else "-"
        table.add_row(
            tr["id"], tr["project"], tr["kind"], tr["name"], tr["target"],
            str(tr["fired"]) + ("" if tr["enabled"] else " (off)"), when, tr["last_error"] or "",
        )  # fmt: skip
    out.print(table)


@triggers_app.command("delete")
def delete_trigger(
    ctx: typer.Context,
    trigger_id: Annotated[str, typer.Argument(help="The trigger's id.")],
    as_json: JsonOpt = False,
) -> None:
    """Delete a trigger: it fires no more."""
    t = _transport(ctx)
    gone = _call(lambda: t.request("DELETE", f"/api/v1/triggers/{trigger_id}"))
    if as_json:
        print_json(gone)
    else:
        out.print(f"deleted trigger {gone['id']}")


# ---------------------------------------------------------------------- events
def events(
    ctx: typer.Context,
    after: Annotated[int, typer.Option(min=0, help="Show events after this seq.")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Events per request.")] = 100,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The event log of your projects (task and run changes, webhooks, schedules, file
    arrivals, function calls), oldest first; --follow waits for more (Ctrl-C stops)."""
    t = _transport(ctx)
    try:
        while True:
            params = _params(project, after=after, limit=limit, wait=20 if follow else 0)
            page = _call(lambda p=params: t.request("GET", "/api/v1/events", params=p))
            for ev in page["items"]:
                if as_json:
                    out.print(
                        json.dumps(ev, separators=(",", ":")), highlight=False, soft_wrap=True
                    )
                else:
                    when = time.strftime("%H:%M:%S", time.localtime(ev["at"]))
                    out.print(
                        f"{ev['seq']:>8} {when} {ev['project'] or '-':<10} {ev['kind']:<18} "
                        f"{ev['subject']}",
                        highlight=False,
                    )
            after = page["next_after"]
            if not follow and len(page["items"]) < limit:
                return
    except KeyboardInterrupt:
        return
