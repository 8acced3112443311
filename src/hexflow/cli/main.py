"""The ``hexflow`` command line (Typer + Rich): run, resume, status, tasks, logs, cancel, demo.

Every command takes ``--json`` for scripts. Exit codes: 0 success, 1 the run (or demo)
failed, 2 bad input (file, option, unknown run), 3 an internal or store error.
"""

from __future__ import annotations

import os
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hexflow.cli import remote
from hexflow.cli.common import JsonOpt, console, out
from hexflow.cli.common import fail as _fail
from hexflow.cli.common import guard as _guard
from hexflow.cli.common import settings_of as _settings
from hexflow.cli.progress import live_progress
from hexflow.cli.render import print_json, run_table, runs_table, task_table
from hexflow.errors import HexflowError, SpecError
from hexflow.settings import Settings

app = typer.Typer(
    name="hexflow",
    help="hexflow: run HPC workflows (Python, YAML, JSON) with durable state, retries, "
    "checkpoint/restart and QoS.\n\nState lives in .hexflow/ of the current directory "
    "(SQLite) unless --home or --db says otherwise.",
    epilog="Examples:  hexflow run flow.py  ·  hexflow run pipeline.yaml -p steps=500  ·  "
    "hexflow status  ·  hexflow tasks RUN --state failed  ·  hexflow logs RUN TASK -f  ·  "
    "hexflow resume RUN  ·  hexflow queue  ·  hexflow cancel RUN/TASK  ·  hexflow demo 1 --json.  "
    "Exit codes: 0 ok, 1 the run failed, 2 bad input, 3 internal or store error.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", envvar="HEXFLOW_HOME", help="hexflow state directory (default ./.hexflow)."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="HEXFLOW_DB",
            help="SQLAlchemy URL of the store (default SQLite in --home).",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="HEXFLOW_SERVER",
            help="Work against this hexflow server (run, status, tasks, logs, cancel, queue).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar="HEXFLOW_TOKEN_FILE",
            help="The --server token, in a file only you may read (default "
            "~/.config/hexflow/token).",
        ),
    ] = None,
) -> None:
    remote.remember(ctx, server, token_file)
    env = dict(os.environ)
    if home:
        env["HEXFLOW_HOME"] = str(home)
    if db:
        env["HEXFLOW_DB"] = db
    ctx.obj = _guard(lambda: Settings.from_env(env))


def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        if "=" not in item:
            _fail(SpecError(f"--param {item!r}: expected KEY=VALUE"), 2)
        key, value = item.split("=", 1)
        params[key.strip()] = value
    return params


def _finish(run: Any, records: list[Any], as_json: bool) -> None:
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
    summary = {**run.summary(), "ok": run.state.value == "succeeded", "tasks": counts}
    if as_json:
        print_json(summary)
    else:
        out.print(run_table(summary))
        failed = [r for r in records if r.state.value in ("failed",)]
        for rec in failed[:5]:
            out.print(f"[red]✗ {rec.name}[/]: {rec.error or rec.reason}", highlight=False)
        if failed:
            out.print(f"  logs: hexflow logs {run.id} {failed[0].id}", highlight=False)
    raise typer.Exit(0 if run.state.value == "succeeded" else 1)


@app.command()
def run(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="Workflow: a .py script, or a .yaml/.yml/.json file.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Override a YAML parameter: KEY=VALUE."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a workflow here (embedded engine) and wait for it, with live progress.

    A Python script is executed as __main__; each `wf.run()` in it is tracked. A YAML or JSON
    file is loaded, checked (errors name the line and field) and run.
    """
    settings = _settings(ctx)
    if not file.exists():
        _fail(
            SpecError(
                f"{file}: no such file", hint="give the path of a .py, .yaml or .json workflow"
            ),
            2,
        )
    if remote.wanted(ctx):
        remote.run(ctx, file, _parse_params(param or []), as_json)
    suffix = file.suffix.lower()
    with live_progress(console, enabled=not as_json and console.is_terminal):
        if suffix == ".py":
            result = _run_script(file, settings, as_json)
        elif suffix not in (".yaml", ".yml", ".json"):
            _fail(
                SpecError(
                    f"{file}: unknown workflow type {suffix!r}",
                    hint="use .py, .yaml, .yml or .json",
                ),
                2,
            )
        else:
            from hexflow.flow.yamlspec import load_workflow

            wf = _guard(lambda: load_workflow(file, params=_parse_params(param or [])))
            result = _guard(lambda: wf.run(settings=settings))
    _finish(result.record, list(result.tasks.values()), as_json)  # after the bar has stopped


def _run_user_script(file: Path) -> None:
    try:
        runpy.run_path(str(file), run_name="__main__")
    except (HexflowError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # the script's own error, not ours
        import traceback

        console.print(traceback.format_exc(), highlight=False, markup=False)
        raise SpecError(
            f"{file} raised {type(exc).__name__}: {exc}",
            hint="the traceback above points at the line in your script",
        ) from None


def _run_script(file: Path, settings: Settings, as_json: bool) -> Any:
    from hexflow.flow import workflow as wf_module

    runs: list[Any] = []
    original = wf_module.Workflow.run

    def tracked(self: Any, *, settings: Settings | None = None) -> Any:
        result = original(self, settings=settings or _script_settings)
        runs.append(result)
        return result

    _script_settings = settings
    sys.path.insert(0, str(file.resolve().parent))
    wf_module.Workflow.run = tracked  # type: ignore[method-assign]
    try:
        _guard(lambda: _run_user_script(file))
    finally:
        wf_module.Workflow.run = original  # type: ignore[method-assign]
        sys.path.remove(str(file.resolve().parent))
    if not runs:
        _fail(SpecError(f"{file} ran no workflow", hint="call wf.run() in the script"), 2)
    last = runs[-1]
    if len(runs) > 1 and not as_json:
        for r in runs[:-1]:
            out.print(f"run {r.id}: {r.state}")
    return last


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or unique prefix).")],
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed", help="Also re-run failed, upstream-failed and cancelled tasks."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Finish a run that was interrupted (crash, kill -9, reboot) from its stored state.

    Completed tasks are never run again; tasks that were in flight are started again. The
    script that built the run is not needed: tasks were stored by value.
    """
    from hexflow.flow.runtime import resume_run

    settings = _settings(ctx)
    with live_progress(console, enabled=not as_json and console.is_terminal):
        run_rec, records = _guard(lambda: resume_run(settings, run_id, retry_failed=retry_failed))
    _finish(run_rec, records, as_json)


@app.command()
def status(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(metavar="[RUN]", help="Run id or prefix; omit to list runs.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, or show one run with task counts by state."""
    from hexflow.flow.runtime import make_store

    if remote.wanted(ctx):
        return remote.status(ctx, run_id, limit, as_json)

    settings = _settings(ctx)
    store = _guard(lambda: make_store(settings))
    try:
        if run_id is None:
            runs = [r.summary() for r in _guard(lambda: store.list_runs(limit))]
            print_json(runs) if as_json else out.print(runs_table(runs))
            return
        run_rec = _guard(lambda: store.get_run(run_id))
        tasks = _guard(lambda: store.load_tasks(run_rec.id))
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.state.value] = counts.get(t.state.value, 0) + 1
        summary = {**run_rec.summary(), "tasks": counts, "total": len(tasks)}
        print_json(summary) if as_json else out.print(run_table(summary))
    finally:
        store.close()


@app.command()
def tasks(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    state: Annotated[
        str | None, typer.Option(help="Only tasks in this state (e.g. failed).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the tasks of a run: state, attempts, duration, exit code, error."""
    from hexflow.flow.runtime import make_store

    if remote.wanted(ctx):
        return remote.tasks(ctx, run_id, state, as_json)

    store = _guard(lambda: make_store(_settings(ctx)))
    try:
        records = _guard(lambda: store.load_tasks(run_id))
    finally:
        store.close()
    rows = [r.summary() for r in records if state is None or r.state.value == state]
    print_json(rows) if as_json else out.print(task_table(rows))


@app.command()
def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    task: Annotated[str, typer.Argument(metavar="TASK", help="Task id, name or unique prefix.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the task ends.")
    ] = False,
    attempt: Annotated[
        int | None, typer.Option(help="Attempt number (default: the latest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a task's stdout and stderr (per attempt), optionally following it live."""
    from hexflow.flow.runtime import log_paths, make_store

    if remote.wanted(ctx):
        return remote.logs(ctx, run_id, task, follow, attempt, as_json)

    store = _guard(lambda: make_store(_settings(ctx)))
    try:
        run_rec = _guard(lambda: store.get_run(run_id))
        rec = _guard(lambda: store.get_task(run_rec.id, task))
        out_path, err_path = log_paths(run_rec, rec, attempt)
        if as_json:
            print_json(
                {
                    "run_id": run_rec.id,
                    "task_id": rec.id,
                    "attempt": attempt or rec.attempt,
                    "state": rec.state.value,
                    "stdout": _read(out_path),
                    "stderr": _read(err_path),
                    "traceback": rec.traceback,
                }
            )
            return
        offsets = {out_path: 0, err_path: 0}
        while True:
            for path in (out_path, err_path):
                data = _read_bytes(path, offsets[path])
                if data:
                    offsets[path] += len(data)  # bytes, not characters: no byte lost or repeated
                    target = sys.stdout if path == out_path else sys.stderr
                    target.buffer.write(data)
                    target.flush()
            if not follow:
                break
            rec = store.get_task(run_rec.id, rec.id)
            if rec.state.terminal:
                follow = False  # one more pass picks up the tail
                continue
            time.sleep(0.3)
        if rec.traceback and rec.spec.kind.value != "shell" and not _read(err_path):
            sys.stderr.write(rec.traceback)
    finally:
        store.close()


def _read_bytes(path: Path, offset: int = 0) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _read(path: Path) -> str:
    return _read_bytes(path).decode(errors="replace")


@app.command()
def cancel(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(metavar="RUN|RUN/TASK", help="A run, or one task as RUN/TASK.")
    ],
    task: Annotated[
        str | None, typer.Argument(metavar="[TASK]", help="A task of RUN to cancel.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run (every unfinished task) or one task (its dependents end upstream_failed).

    If a hexflow process is driving the run, it is asked to stop the work (running processes
    are killed); otherwise the store is updated directly.
    """
    from hexflow.flow.runtime import cancel as do_cancel

    run_ref = target
    if task is None and "/" in target:
        run_ref, task = target.split("/", 1)
    if remote.wanted(ctx):
        return remote.cancel(ctx, run_ref, task, as_json)
    result = _guard(lambda: do_cancel(_settings(ctx), run_ref, task))
    if as_json:
        print_json(result)
    else:
        what = (
            f"task {result['task_id']} of run {result['run_id']}"
            if result["task_id"]
            else f"run {result['run_id']}"
        )
        verb = "cancel requested for" if result["mode"] == "requested" else "cancelled"
        out.print(f"{verb} {what}", highlight=False)


@app.command()
def demo(
    number: Annotated[int | None, typer.Argument(help="Demo number; omit to list them.")] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Where to run (default: a fresh temporary directory).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the archetype examples, or run example N end to end in a fresh directory."""
    from hexflow_examples.registry import DEMOS, run_demo

    if number is None:
        rows = [
            {"demo": d.number, "title": d.title, "description": d.description}
            for d in DEMOS.values()
        ]
        if as_json:
            print_json(rows)
        else:
            from rich.table import Table

            table = Table(title="hexflow demos (run one with: hexflow demo N)")
            for col in ("demo", "title", "description"):
                table.add_column(col)
            for row in rows:
                table.add_row(str(row["demo"]), str(row["title"]), str(row["description"]))
            out.print(table)
        return
    from hexflow_examples.registry import get_demo

    _guard(lambda: get_demo(number))  # an unknown number fails before anything is created
    where = workdir or Path(tempfile.mkdtemp(prefix=f"hexflow-demo{number}-"))
    where.mkdir(parents=True, exist_ok=True)
    if not as_json:
        console.print(f"running demo {number} in {where}", highlight=False)
    report = _guard(lambda: run_demo(number, where.resolve()))
    report.setdefault("workdir", str(where))
    if as_json:
        print_json(report)
    else:
        print_demo_report(report)
    raise typer.Exit(0 if report.get("ok") else 1)


def print_demo_report(report: dict[str, Any]) -> None:
    """A demo's report: its figures, then its summary ``table`` (title, columns, rows) if it
    has one, then ok or FAILED."""
    from rich.pretty import Pretty
    from rich.table import Table

    summary = report.get("table")
    out.print(Pretty({k: v for k, v in report.items() if k != "table"}))
    if isinstance(summary, dict) and summary.get("columns"):
        table = Table(title=str(summary.get("title", "")))
        for col in summary["columns"]:
            table.add_column(str(col))
        for row in summary.get("rows", []):
            table.add_row(*(str(cell) for cell in row))
        out.print(table)
    out.print("[green]ok[/]" if report.get("ok") else "[red]FAILED[/]")


from hexflow.cli.sim import sim_app  # noqa: E402

app.add_typer(sim_app, name="sim")

from hexflow.cli.queue import QUEUE_EPILOG, queue  # noqa: E402

app.command(epilog=QUEUE_EPILOG)(queue)
from hexflow.cli.admin import admin_app  # noqa: E402
from hexflow.cli.server import server  # noqa: E402

app.add_typer(admin_app, name="admin")
app.command("server")(server)
from hexflow.cli.data import data_app  # noqa: E402
from hexflow.cli.data_transfers import TRANSFERS_EPILOG, transfers  # noqa: E402

app.add_typer(data_app, name="data")
app.command(epilog=TRANSFERS_EPILOG)(transfers)
from hexflow.cli.sites import sites_app  # noqa: E402

app.add_typer(sites_app, name="sites")
from hexflow.cli.services import services_app  # noqa: E402

app.add_typer(services_app, name="services")
from hexflow.cli.functions import events, functions_app, triggers_app  # noqa: E402

app.add_typer(functions_app, name="functions")
app.add_typer(triggers_app, name="triggers")
app.command("events")(events)


def main() -> None:
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
