"""``hexflow data export`` and ``export-run``: a dataset version, or a whole workflow run,
written as an RO-Crate and checked (exit 3 when the crate is invalid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hexflow.cli.common import JsonOpt, out, settings_of
from hexflow.cli.data_common import (
    ProjectOpt,
    StorageOpt,
    bad_input,
    data_services,
    run_data,
)
from hexflow.cli.render import print_json


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
        bad_input("say where to export", hint="--ro-crate DIR")
    assert ro_crate is not None
    with data_services(ctx, project, storage) as data:
        report = run_data(lambda: export_version(data.catalog, ref, ro_crate, license=license))
    problems = check_crate(ro_crate)
    what = f"{report['ref']} → {report['directory']} ({report['files']} files"
    _crate_report(report, problems, what, as_json)


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
        bad_input("say where to export", hint="--ro-crate DIR")
    assert ro_crate is not None
    settings = settings_of(ctx)

    def records() -> tuple[Any, list[Any]]:
        store = open_store(settings.db_url)
        try:
            run = store.get_run(run_ref)
            return run, store.load_tasks(run.id)
        finally:
            store.close()

    run, tasks = run_data(records)
    with data_services(ctx, run.project or "default", storage) as data:
        report = run_data(
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
