"""``hexflow --server URL ...`` (or ``HEXFLOW_SERVER``): run, status, tasks, logs, cancel
and queue against a ``hexflow server`` through the SDK, with the token from a private
token file (``hexflow.client.config``). Same output and exit codes as the local commands.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hexflow.cli.common import console, out
from hexflow.cli.render import print_json, run_table, runs_table, task_table
from hexflow.errors import AuthError, Forbidden, HexflowError, NotFound, SpecError

if TYPE_CHECKING:  # imported on use: the local commands do not pay for httpx
    from hexflow.client import Client, RemoteRun

_KEY = "hexflow.remote"


def remember(ctx: typer.Context, server: str | None, token_file: Path | None) -> None:
    """Called by the top-level callback: later commands go remote when ``server`` is set."""
    if server:
        ctx.meta[_KEY] = (server, token_file)


def wanted(ctx: typer.Context) -> bool:
    return _KEY in ctx.meta


def _client(ctx: typer.Context) -> Client:
    from hexflow.client import Client
    from hexflow.client.config import default_token_file, load_token

    server, token_file = ctx.meta[_KEY]
    token = _guard(lambda: load_token(token_file or default_token_file()))
    return Client(server, token)


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except (SpecError, NotFound, AuthError, Forbidden) as exc:
        _fail(exc, 2)
    except HexflowError as exc:
        _fail(exc, 3)


def _fail(exc: HexflowError, code: int) -> None:
    console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    if exc.hint:
        console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    raise typer.Exit(code)


def _run_summary(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": info["id"],
        "name": info["name"],
        "state": info["state"],
        "created_at": info["created_at"],
        "started_at": info["started_at"],
        "ended_at": info["ended_at"],
        "project": info.get("project"),
        "workdir": f"(on the server, project {info.get('project')})",
        "tasks": info.get("tasks") or {},
    }


def _task_row(task: dict[str, Any]) -> dict[str, Any]:
    return {**task, "task_id": task["id"]}


# ---------------------------------------------------------------------- commands
def run(ctx: typer.Context, file: Path, params: dict[str, str], as_json: bool) -> None:
    with _client(ctx) as client:
        if file.suffix.lower() == ".py":
            handle = _run_script(client, file)
        else:
            handle = _guard(lambda: client.submit(file, params=params))
            if not as_json:
                console.print(f"submitted run {handle.id} to {client.url}", highlight=False)
            _guard(lambda: handle.wait())
        summary = {**_run_summary(handle.info), "ok": handle.ok}
        if as_json:
            print_json(summary)
        else:
            out.print(run_table(summary))
            failed = _guard(lambda: handle.tasks(state="failed"))
            for task in failed[:5]:
                out.print(f"[red]✗ {task['name']}[/]: {task['error'] or task['reason']}")
            if failed:
                where = f"--server {client.url} logs {handle.id} {failed[0]['id']}"
                out.print(f"  logs: hexflow {where}", highlight=False)
    raise typer.Exit(0 if handle.ok else 1)


def _run_script(client: Client, file: Path) -> RemoteRun:
    """Run the script here; each ``wf.run()`` in it submits to the server and waits."""
    from hexflow.flow import workflow as wf_module

    handles: list[RemoteRun] = []
    original = wf_module.Workflow.run

    def submit_and_wait(self: Any, *, settings: Any = None) -> RemoteRun:
        handle: RemoteRun = self.submit(client)
        console.print(f"submitted run {handle.id} to {client.url}", highlight=False)
        handles.append(handle.wait())
        return handle

    sys.path.insert(0, str(file.resolve().parent))
    wf_module.Workflow.run = submit_and_wait  # type: ignore[assignment,method-assign]
    try:
        _guard(lambda: runpy.run_path(str(file), run_name="__main__"))
    finally:
        wf_module.Workflow.run = original  # type: ignore[method-assign]
        sys.path.remove(str(file.resolve().parent))
    if not handles:
        _fail(SpecError(f"{file} ran no workflow", hint="call wf.run() in the script"), 2)
    return handles[-1]


def status(ctx: typer.Context, run_id: str | None, limit: int, as_json: bool) -> None:
    with _client(ctx) as client:
        if run_id is None:
            runs = [_run_summary(r) for r in _guard(lambda: client.runs(limit=limit))]
            print_json(runs) if as_json else out.print(runs_table(runs))
            return
        info = _run_summary(_guard(lambda: client.get_run(run_id)))
        info["total"] = sum(info["tasks"].values())
        print_json(info) if as_json else out.print(run_table(info))


def tasks(ctx: typer.Context, run_id: str, state: str | None, as_json: bool) -> None:
    with _client(ctx) as client:
        rows = [_task_row(t) for t in _guard(lambda: client.tasks(run_id, state=state))]
    print_json(rows) if as_json else out.print(task_table(rows))


def logs(
    ctx: typer.Context,
    run_id: str,
    task: str,
    follow: bool,
    attempt: int | None,
    as_json: bool,
) -> None:
    with _client(ctx) as client:
        if as_json or not follow:
            body = _guard(lambda: client.logs(run_id, task, attempt=attempt))
            if as_json:
                print_json(body)
                return
            sys.stdout.write(body["stdout"])
            sys.stdout.flush()
            sys.stderr.write(body["stderr"])
            if body.get("traceback") and not body["stderr"]:
                sys.stderr.write(body["traceback"])
            return

        def stream() -> None:
            for event in client.follow_logs(run_id, task, attempt=attempt):
                target = {"stdout": sys.stdout, "stderr": sys.stderr}.get(event.event)
                if target is not None:
                    target.write(event.data["text"])
                    target.flush()

        _guard(stream)


def cancel(ctx: typer.Context, run_ref: str, task: str | None, as_json: bool) -> None:
    with _client(ctx) as client:
        if task:
            got = _guard(lambda: client.cancel_task(run_ref, task))
            result = {"run_id": run_ref, "task_id": got["id"], "state": got["state"]}
        else:
            got = _guard(lambda: client.cancel(run_ref))
            result = {"run_id": got["id"], "task_id": None, "state": got["state"]}
    if as_json:
        print_json(result)
        return
    what = f"task {task} of run {run_ref}" if task else f"run {result['run_id']}"
    out.print(f"cancel requested for {what} (now {result['state']})", highlight=False)


def queue(ctx: typer.Context, run_id: str | None, limit: int, as_json: bool) -> None:
    from rich.table import Table

    with _client(ctx) as client:
        rows = _guard(lambda: client.queue(run_id, limit=limit))
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no waiting tasks" + (f" in run {run_id}" if run_id else " in active runs"))
        return
    table = Table(title="queue (priority order)", title_justify="left")
    for col in ("#", "RUN", "TASK", "QOS", "REASON"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["position"]), r["run_id"], r["name"], r["qos"], r["reason"])
    out.print(table)
