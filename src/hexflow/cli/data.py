"""``hexflow data ...`` and ``hexflow transfers``: tiers, verified copies, the dataset catalog,
lineage, RO-Crate export and lifecycle rules (see docs/data.md).

Exit codes as everywhere: 0 ok, 1 the transfer (or action) failed or a quota refused it,
2 bad input (a location, reference, option or rule that needs fixing), 3 internal or store
error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hexflow.cli.common import JsonOpt, console, guard, out, settings_of
from hexflow.cli.render import print_json
from hexflow.data.errors import (
    BackendError,
    DataError,
    DataInputError,
    DataNotFound,
    QuotaExceeded,
    TransferFailed,
)
from hexflow.errors import HexflowError, SpecError
from hexflow.model.resources import format_bytes

data_app = typer.Typer(
    name="data",
    help="Storage tiers, verified transfers, the dataset catalog, lineage and RO-Crate export.",
    epilog="Locations are TIER:PATH (qss, pss, offplatform, archive; TIER@SITE:PATH for "
    "another site) or local paths.  Examples:  hexflow data cp ./run1 qss:run1  ·  "
    "hexflow data add climate qss:run1 --meta title='Run 1'  ·  hexflow data search "
    "temperature  ·  hexflow data lineage climate@1 --downstream  ·  hexflow data export "
    "climate@1 --ro-crate out/  ·  hexflow data export-run RUN --ro-crate run-crate/  ·  "
    "hexflow data lifecycle --dry-run  ·  hexflow transfers",
    no_args_is_help=True,
)

ProjectOpt = Annotated[
    str,
    typer.Option(
        "--project", envvar="HEXFLOW_PROJECT", help="Project whose namespace and catalog to use."
    ),
]
StorageOpt = Annotated[
    Path | None,
    typer.Option(
        "--storage",
        envvar="HEXFLOW_STORAGE",
        help="Storage settings file (default: $HEXFLOW_HOME/storage.yaml if present).",
    ),
]


def fail(exc: HexflowError, code: int) -> None:
    """Print the error and its hint verbatim (no markup: paths like ``x:y:`` stay as
    written) and exit with ``code``."""
    console.print("[bold red]error:[/] ", end="")
    console.print(exc.message, markup=False, emoji=False, highlight=False)
    if exc.hint:
        console.print("[yellow]hint:[/] ", end="")
        console.print(exc.hint, markup=False, emoji=False, highlight=False)
    raise typer.Exit(code)


def _run(fn: Callable[[], Any]) -> Any:
    """``guard`` plus the data layer's own exit codes."""

    def mapped() -> Any:
        try:
            return fn()
        except (DataInputError, DataNotFound) as exc:
            fail(exc, 2)
        except (TransferFailed, QuotaExceeded, BackendError) as exc:
            fail(exc, 1)
        except DataError as exc:
            fail(exc, 3)

    return guard(mapped)


@contextmanager
def _services(
    ctx: typer.Context, project: str, storage: Path | None, workers: int = 8
) -> Iterator[Any]:
    from hexflow.data import load_storage, open_data
    from hexflow.model.datasets import check_name

    settings = settings_of(ctx)
    try:
        check_name(project, "project name")
    except SpecError as exc:
        _bad(f"--project: {exc.message}", hint=exc.hint)
    config = _run(lambda: load_storage(settings.home, storage))
    services = _run(lambda: open_data(settings.db_url, config, project=project, workers=workers))
    try:
        yield services
    finally:
        services.close()


def _bad(message: str, hint: str | None = None) -> None:
    fail(DataInputError(message, hint=hint), 2)


@contextmanager
def _progress_bar(enabled: bool, label: str) -> Iterator[Callable[[Any], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("files {task.fields[files]}"),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task(label, total=None, files="")
    bar.start()

    def update(p: Any) -> None:
        bar.update(
            task,
            description=f"{label} {p.transfer_id}",
            completed=p.bytes_done,
            total=p.bytes_total or None,
            files=f"{p.files_done}/{p.files_total}"
            + (f" [red]failed {p.failed}[/]" if p.failed else ""),
        )

    try:
        yield update
    finally:
        bar.stop()


def _transfer_out(rec: Any, as_json: bool, started: float) -> None:
    summary = rec.summary()
    elapsed = max(time.monotonic() - started, 1e-9)
    summary["seconds"] = round(elapsed, 3)
    if as_json:
        print_json(summary)
        return
    rate = rec.bytes_done / elapsed
    out.print(
        f"[green]✓[/] transfer {rec.id}: {rec.files_done} file(s), "
        f"{format_bytes(rec.bytes_done)} in {elapsed:.1f}s ({format_bytes(int(rate))}/s), "
        "checksums verified",
        highlight=False,
    )


# ---------------------------------------------------------------------- transfers


@data_app.command("cp")
def cp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SRC", help="TIER:PATH or a local path.")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="TIER:PATH or a local path.")],
    workers: Annotated[int, typer.Option(help="Files copied in parallel.")] = 8,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a file or a directory between tiers (or to/from local paths), checksummed end to
    end, resumable with `hexflow transfers ID --resume`.

    Nothing partial appears at the destination; the source is never changed. A directory's
    files land under DST with the same relative paths; a file lands at DST, or inside it
    when DST is a directory or ends with '/'.
    """
    if workers < 1:
        _bad("--workers must be at least 1")
    with _services(ctx, project, storage, workers) as data:
        started = time.monotonic()
        with _progress_bar(not as_json and console.is_terminal, "copy") as bar:
            rec = _run(lambda: data.transfers.copy(source, destination, progress=bar))
        _transfer_out(rec, as_json, started)


def transfers(
    ctx: typer.Context,
    transfer_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="A transfer id (or prefix): show its files."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on with an interrupted or failed transfer.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many transfers to list.")] = 20,
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="List every project's transfers.")
    ] = False,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent transfers, show one with its files, or resume one (--resume)."""
    if limit < 1:
        _bad("--limit must be at least 1")
    if resume and transfer_id is None:
        _bad("--resume needs a transfer id", hint="hexflow transfers ID --resume")
    with _services(ctx, project, storage) as data:
        if transfer_id is None:
            rows = [r.summary() for r in _run(lambda: data.transfers.recent(limit, all_projects))]
            if as_json:
                print_json(rows)
                return
            table = Table(title="transfers (newest first)", title_justify="left")
            for col in ("id", "state", "files", "bytes", "source → destination", "error"):
                table.add_column(col)
            for r in rows:
                table.add_row(
                    r["transfer_id"],
                    _state(r["state"]),
                    f"{r['files_done']}/{r['files_total']}",
                    f"{format_bytes(r['bytes_done'])}/{format_bytes(r['bytes_total'])}",
                    f"{r['source']} → {r['destination']}",
                    (r["error"] or "")[:80],
                )
            out.print(table)
            return
        if resume:
            started = time.monotonic()
            with _progress_bar(not as_json and console.is_terminal, "resume") as bar:
                rec = _run(lambda: data.transfers.resume(transfer_id, progress=bar))
            _transfer_out(rec, as_json, started)
            return
        rec = _run(lambda: data.transfers.get(transfer_id))
        items = _run(lambda: data.transfers.items(rec.id))
        if as_json:
            print_json({**rec.summary(), "items": [i.summary() for i in items]})
            return
        out.print(
            f"transfer {rec.id} [{_state(rec.state.value)}]: {rec.source} → {rec.destination}, "
            f"{rec.files_done}/{rec.files_total} files, {format_bytes(rec.bytes_done)}/"
            f"{format_bytes(rec.bytes_total)}",
            highlight=False,
        )
        if rec.error:
            out.print(f"[red]{rec.error}[/]", highlight=False)
        table = Table()
        for col in ("#", "state", "size", "attempts", "source", "error"):
            table.add_column(col)
        for it in items[:200]:
            table.add_row(
                str(it.seq),
                _state(it.state.value),
                format_bytes(it.size),
                str(it.attempts),
                it.src,
                (it.error or "")[:80],
            )
        out.print(table)


TRANSFERS_EPILOG = (
    "Examples: hexflow transfers · hexflow transfers 3f9a --json · "
    "hexflow transfers 3f9a --resume (after a crash or a failure: files already verified are "
    "not copied again)"
)

_STYLE = {"succeeded": "green", "done": "green", "failed": "red", "running": "cyan"}


def _state(value: str) -> str:
    style = _STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


# ---------------------------------------------------------------------- catalog


def _parse_meta(items: list[str] | None, file: Path | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            _bad(f"--metadata {file}: {exc}", hint="give a JSON file holding an object")
        if not isinstance(loaded, dict):
            _bad(f"--metadata {file}: expected a JSON object")
        meta.update(loaded)
    for item in items or []:
        if "=" not in item:
            _bad(f"--meta {item!r}: expected KEY=VALUE", hint="e.g. --meta title='Run 1'")
        key, value = item.split("=", 1)
        key = key.strip()
        if key in ("creators", "keywords"):
            meta[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            meta[key] = value
    return meta


@data_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    source: Annotated[str, typer.Argument(metavar="SRC", help="TIER:PATH or a local path.")],
    tier: Annotated[
        str | None,
        typer.Option(help="Copy the files into this tier (default: pss for a local source)."),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", "-m", help="Metadata KEY=VALUE (creators, keywords: a,b)."),
    ] = None,
    metadata: Annotated[
        Path | None, typer.Option("--metadata", help="Metadata from a JSON file.")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Provenance: the run that produced it.")
    ] = None,
    task_id: Annotated[
        str | None, typer.Option("--task", help="Provenance: the task that produced it.")
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="Provenance: a version it was made from (NAME@N)."),
    ] = None,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register files as a new immutable version of a dataset (identical content: the same
    version). A local source is copied, verified, into a tier."""
    if (run_id is None) != (task_id is None):
        _bad("--run and --task go together", hint="give both, or neither")
    fields = _parse_meta(meta, metadata)
    produced = (run_id, task_id) if run_id and task_id else None
    with (
        _services(ctx, project, storage) as data,
        _progress_bar(not as_json and console.is_terminal, "add") as bar,
    ):
        version, created = _run(
            lambda: data.catalog.add(
                name,
                source,
                tier=tier,
                metadata=fields,
                produced_by=produced,
                inputs=inputs or [],
                progress=bar,
            )
        )
    if as_json:
        print_json({**version.summary(), "created": created})
        return
    verb = "new version" if created else "same content as existing version"
    out.print(
        f"[green]✓[/] {version.ref} ({verb}): {version.files} file(s), "
        f"{format_bytes(version.size)}, pid {version.pid}",
        highlight=False,
    )


@data_app.command("ls")
def ls(
    ctx: typer.Context,
    location: Annotated[
        str | None,
        typer.Argument(metavar="[TIER:PATH]", help="List files there; omit to list datasets."),
    ] = None,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the datasets of the project, or the files at a tier location."""
    with _services(ctx, project, storage) as data:
        if location is None:
            rows = _run(data.catalog.datasets)
            if as_json:
                print_json(rows)
                return
            table = Table(title=f"datasets of project {project}", title_justify="left")
            for col in ("name", "versions", "latest"):
                table.add_column(col)
            for r in rows:
                table.add_row(r["name"], str(r["versions"]), f"{r['name']}@{r['latest']}")
            out.print(table if rows else "no datasets yet: hexflow data add NAME SRC")
            return
        loc = _run(lambda: data.transfers.locate(location))
        backend = _run(lambda: data.transfers.backend(loc.tier))
        key = loc.key(project).rstrip("/")

        def listing() -> list[dict[str, Any]]:
            info = backend.stat(key)
            if info is not None:
                return [{"path": key.rsplit("/", 1)[-1], "size": info.size, "mtime": info.mtime}]
            base = f"{key}/" if key else ""
            return [
                {"path": o.key[len(base) :], "size": o.size, "mtime": o.mtime}
                for o in backend.list(key)
            ]

        rows = _run(listing)
        if as_json:
            print_json(rows)
            return
        for r in rows:
            out.print(f"{format_bytes(r['size']):>10}  {r['path']}", highlight=False)
        if not rows:
            console.print(f"{location}: empty", highlight=False)


@data_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]|PID")],
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A version: its identifier, metadata, files, replicas and the dataset's versions."""
    with _services(ctx, project, storage) as data:
        cat = data.catalog
        version = _run(lambda: cat.resolve(ref))
        files = _run(lambda: cat.files(version))
        replicas = _run(lambda: cat.replicas(version))
        versions = _run(lambda: cat.versions(version.name))
    body = {
        **version.summary(),
        "files_list": [f.as_dict() for f in files],
        "replicas": [r.summary() for r in replicas],
        "versions": [{"version": v.number, "digest": v.digest} for v in versions],
    }
    if as_json:
        print_json(body)
        return
    out.print(f"[bold]{version.ref}[/]  {version.title}", highlight=False)
    out.print(f"  pid     {version.pid}\n  digest  {version.digest}", highlight=False)
    out.print(f"  size    {format_bytes(version.size)} in {version.files} file(s)")
    for key, value in version.metadata.items():
        out.print(f"  {key}: {value}", highlight=False)
    for r in replicas:
        out.print(f"  on {r.tier}@{r.site}:{r.location}", highlight=False)
    for f in files[:50]:
        out.print(f"    {format_bytes(f.size):>10}  {f.path}", highlight=False)
    if len(files) > 50:
        out.print(f"    … {len(files) - 50} more (--json lists all)")
    out.print("  versions: " + ", ".join(f"@{v.number}" for v in versions), highlight=False)


@data_app.command("search")
def search(
    ctx: typer.Context,
    text: Annotated[
        str | None, typer.Argument(help="Words to find (name, metadata, file names).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Dataset name contains this (or a glob with *).")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", "-m", help="Metadata KEY=VALUE that must hold (a.b for nested)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many versions.")] = 20,
    relevance: Annotated[
        bool,
        typer.Option("--relevance", help="Best full-text matches first (default: newest first)."),
    ] = False,
    all_projects: Annotated[bool, typer.Option("--all-projects")] = False,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find versions by full text, name and metadata (newest first, or --relevance)."""
    filters: dict[str, str] = {}
    for item in meta or []:
        if "=" not in item:
            _bad(f"--meta {item!r}: expected KEY=VALUE", hint="e.g. --meta license=CC-BY-4.0")
        key, value = item.split("=", 1)
        filters[key.strip()] = value
    if not (text or name or filters):
        _bad("nothing to search for", hint="give words, --name or --meta KEY=VALUE")
    with _services(ctx, project, storage) as data:
        found = _run(
            lambda: data.catalog.search(
                text,
                name=name,
                meta=filters,
                limit=limit,
                all_projects=all_projects,
                order="relevance" if relevance else "newest",
            )
        )
    rows = [v.summary() for v in found]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} match(es)", title_justify="left")
    for col in ("version", "title", "size", "files", "pid"):
        table.add_column(col)
    for v in found:
        table.add_row(v.ref, v.title, format_bytes(v.size), str(v.files), v.pid)
    out.print(table)


@data_app.command("lineage")
def lineage(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    downstream: Annotated[
        bool, typer.Option("--downstream", help="What was made from it (default: upstream).")
    ] = False,
    depth: Annotated[int, typer.Option(help="How many task runs away to follow.")] = 10,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Provenance: the task runs and versions a version was made from (or made into)."""
    direction = "downstream" if downstream else "upstream"
    with _services(ctx, project, storage) as data:
        edges = _run(lambda: data.catalog.lineage(ref, direction, depth))
    rows = [e.summary() for e in edges]
    if as_json:
        print_json({"ref": ref, "direction": direction, "edges": rows})
        return
    if not rows:
        out.print(f"{ref}: no recorded {direction} lineage")
        return
    for e in edges:
        arrow = f"{e.input or '(no input)'} → [{e.run_id}/{e.task_id}] → {e.output or '-'}"
        out.print(f"{'  ' * (e.depth - 1)}{arrow}", highlight=False, markup=False)


@data_app.command("export")
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    ro_crate: Annotated[
        Path | None, typer.Option("--ro-crate", help="Write an RO-Crate into this directory.")
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="License URL, if the metadata has none.")
    ] = None,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version as an RO-Crate (files verified, metadata, provenance)."""
    from hexflow.data.rocrate_export import check_crate, export_version

    if ro_crate is None:
        _bad("say where to export", hint="--ro-crate DIR")
    assert ro_crate is not None
    with _services(ctx, project, storage) as data:
        report = _run(lambda: export_version(data.catalog, ref, ro_crate, license=license))
    problems = check_crate(ro_crate)
    what = f"{report['ref']} → {report['directory']} ({report['files']} files"
    _crate_report(report, problems, what, as_json)


@data_app.command("export-run")
def export_run(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id (or prefix).")],
    ro_crate: Annotated[
        Path | None, typer.Option("--ro-crate", help="Write the RO-Crate into this directory.")
    ] = None,
    license: Annotated[
        str, typer.Option(help="License URL of the crate.")
    ] = "https://spdx.org/licenses/CC-BY-4.0",
    no_data: Annotated[
        bool,
        typer.Option(
            "--no-data", help="Refer to the versions the run made by PID instead of copying them."
        ),
    ] = False,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a whole workflow run as a Workflow Run / Provenance Run RO-Crate: the tasks as
    they ran, each task run with the dataset versions it used and made, and those files."""
    from hexflow.data.runcrate import check_run_crate
    from hexflow.data.runcrate import export_run as write_crate
    from hexflow.store import open_store

    if ro_crate is None:
        _bad("say where to export", hint="--ro-crate DIR")
    assert ro_crate is not None
    settings = settings_of(ctx)

    def records() -> tuple[Any, list[Any]]:
        store = open_store(settings.db_url)
        try:
            run = store.get_run(run_ref)
            return run, store.load_tasks(run.id)
        finally:
            store.close()

    run, tasks = _run(records)
    with _services(ctx, run.project or "default", storage) as data:
        report = _run(
            lambda: write_crate(
                data.catalog, run, tasks, ro_crate, license=license, with_data=not no_data
            )
        )
    problems = check_run_crate(ro_crate)
    what = (
        f"run {run.id} → {report['directory']} ({report['tasks']} tasks, "
        f"{len(report['versions_made'])} version(s) made"
    )
    _crate_report(report, problems, what, as_json)


def _crate_report(report: dict[str, Any], problems: list[str], what: str, as_json: bool) -> None:
    """Print an export's report with its crate check; exit 3 if the crate is invalid."""
    report["valid"] = not problems
    report["problems"] = problems
    if as_json:
        print_json(report)
    else:
        out.print(
            f"[green]✓[/] {what}, RO-Crate {'valid' if not problems else 'INVALID'})",
            highlight=False,
        )
        for p in problems:
            out.print(f"  [red]{p}[/]", highlight=False)
    if problems:
        raise typer.Exit(3)


@data_app.command("usage")
def usage(
    ctx: typer.Context,
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="Every project found in the tiers.")
    ] = False,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bytes and files per tier and project, next to quotas and capacities."""
    from hexflow.data.usage import usage as compute

    with _services(ctx, project, storage) as data:
        rows = _run(
            lambda: compute(
                data.transfers.storage,
                data.transfers.backend,
                project=None if all_projects else project,
            )
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title="storage usage", title_justify="left")
    for col in ("tier", "kind", "project", "used", "files", "quota", "capacity"):
        table.add_column(col)
    for r in rows:
        quota = "-"
        if r["quota"]:
            quota = f"{format_bytes(r['quota'])} ({100 * r['quota_used']:.0f}%)"
        table.add_row(
            r["tier"],
            r["kind"],
            r["project"] or "-",
            format_bytes(r["used"]),
            str(r["files"]),
            quota,
            format_bytes(r["capacity"]) if r["capacity"] else "-",
        )
    out.print(table)


@data_app.command("lifecycle")
def lifecycle(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what the rules would do; change nothing.")
    ] = False,
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the lifecycle rules of the storage settings (moves, deletions), audited."""
    from hexflow.data.lifecycle_run import LifecycleRunner

    settings = settings_of(ctx)
    with _services(ctx, project, storage) as data:
        runner = _run(
            lambda: LifecycleRunner(data.catalog, finished_runs=_finished_runs(settings.db_url))
        )
        if not runner.rules:
            _bad(
                "no lifecycle rules are configured",
                hint="add a 'lifecycle:' list to the storage settings (docs/data.md)",
            )
        actions = _run(lambda: runner.plan(time.time()))
        rows = (
            [{**a.summary(), "outcome": "planned"} for a in actions]
            if dry_run
            else _run(lambda: runner.apply(actions))
        )
    if as_json:
        print_json(rows)
    else:
        if not rows:
            out.print("nothing to do")
        for r in rows:
            where = f"{r['from']} → {r['to']}" if r["to"] else r["from"]
            out.print(
                f"{r['outcome']:>8}  {r['action']:<6} {r['ref']:<24} {where:<18} {r['reason']}",
                highlight=False,
            )
    if any(r["outcome"] == "failed" for r in rows):
        raise typer.Exit(1)


def _finished_runs(db_url: str) -> Callable[[Any], frozenset[str]]:
    def finished(run_ids: Any) -> frozenset[str]:
        from hexflow.errors import StoreError
        from hexflow.store import open_store

        ids = set(run_ids)
        if not ids:
            return frozenset()
        store = open_store(db_url)
        try:
            done = set()
            for run_id in ids:
                try:
                    if store.get_run(run_id).state.terminal:
                        done.add(run_id)
                except StoreError:
                    continue  # not a run of this store (recorded by hand)
            return frozenset(done)
        finally:
            store.close()

    return finished


@data_app.command("verify")
def verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read every replica of a version and compare it with the manifest."""
    with _services(ctx, project, storage) as data:
        version = _run(lambda: data.catalog.resolve(ref))
        report = []
        for replica in _run(lambda: data.catalog.replicas(version)):
            check: Callable[[], list[str]] = partial(data.catalog.verify, version, replica)
            problems = _run(check)
            report.append({"tier": replica.tier, "site": replica.site, "problems": problems})
    if as_json:
        print_json({"ref": version.ref, "replicas": report})
    else:
        for r in report:
            mark = "[green]ok[/]" if not r["problems"] else "[red]DAMAGED[/]"
            out.print(f"{version.ref} on {r['tier']}@{r['site']}: {mark}", highlight=False)
            for p in r["problems"]:
                out.print(f"  {p}", highlight=False)
    if any(r["problems"] for r in report):
        raise typer.Exit(1)
