"""The dataset catalog's commands: ``hexflow data add``, ``ls``, ``show``, ``search``,
``lineage`` and ``verify`` — registering versions, finding and reading them, their
provenance, and checking their replicas against the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hexflow.cli.common import JsonOpt, console, out
from hexflow.cli.data_common import (
    ProjectOpt,
    StorageOpt,
    bad_input,
    data_services,
    progress_bar,
    run_data,
)
from hexflow.cli.render import print_json
from hexflow.model.resources import format_bytes


def _parse_meta(items: list[str] | None, file: Path | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            bad_input(f"--metadata {file}: {exc}", hint="give a JSON file holding an object")
        if not isinstance(loaded, dict):
            bad_input(f"--metadata {file}: expected a JSON object")
        meta.update(loaded)
    for item in items or []:
        if "=" not in item:
            bad_input(f"--meta {item!r}: expected KEY=VALUE", hint="e.g. --meta title='Run 1'")
        key, value = item.split("=", 1)
        key = key.strip()
        if key in ("creators", "keywords"):
            meta[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            meta[key] = value
    return meta


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
        bad_input("--run and --task go together", hint="give both, or neither")
    fields = _parse_meta(meta, metadata)
    produced = (run_id, task_id) if run_id and task_id else None
    with (
        data_services(ctx, project, storage) as data,
        progress_bar(not as_json and console.is_terminal, "add") as bar,
    ):
        version, created = run_data(
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
    with data_services(ctx, project, storage) as data:
        if location is None:
            rows = run_data(data.catalog.datasets)
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
        loc = run_data(lambda: data.transfers.locate(location))
        backend = run_data(lambda: data.transfers.backend(loc.tier))
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

        rows = run_data(listing)
        if as_json:
            print_json(rows)
            return
        for r in rows:
            out.print(f"{format_bytes(r['size']):>10}  {r['path']}", highlight=False)
        if not rows:
            console.print(f"{location}: empty", highlight=False)


def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]|PID")],
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A version: its identifier, metadata, files, replicas and the dataset's versions."""
    with data_services(ctx, project, storage) as data:
        cat = data.catalog
        version = run_data(lambda: cat.resolve(ref))
        files = run_data(lambda: cat.files(version))
        replicas = run_data(lambda: cat.replicas(version))
        versions = run_data(lambda: cat.versions(version.name))
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
            bad_input(f"--meta {item!r}: expected KEY=VALUE", hint="e.g. --meta license=CC-BY-4.0")
        key, value = item.split("=", 1)
        filters[key.strip()] = value
    if not (text or name or filters):
        bad_input("nothing to search for", hint="give words, --name or --meta KEY=VALUE")
    with data_services(ctx, project, storage) as data:
        found = run_data(
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
    with data_services(ctx, project, storage) as data:
        edges = run_data(lambda: data.catalog.lineage(ref, direction, depth))
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


def verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    project: ProjectOpt = "default",
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read every replica of a version and compare it with the manifest."""
    with data_services(ctx, project, storage) as data:
        version = run_data(lambda: data.catalog.resolve(ref))
        report = []
        for replica in run_data(lambda: data.catalog.replicas(version)):
            check: Callable[[], list[str]] = partial(data.catalog.verify, version, replica)
            problems = run_data(check)
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
