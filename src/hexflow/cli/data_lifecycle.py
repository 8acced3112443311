"""``hexflow data usage`` and ``lifecycle``: what the tiers hold next to quotas and
capacities, and applying the storage settings' lifecycle rules (moves, deletions), audited.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from hexflow.cli.common import JsonOpt, out, settings_of
from hexflow.cli.data_common import (
    ProjectOpt,
    StorageOpt,
    bad_input,
    data_services,
    run_data,
)
from hexflow.cli.render import print_json
from hexflow.model.resources import format_bytes


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

    with data_services(ctx, project, storage) as data:
        rows = run_data(
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
    from hexflow.data.lifecycle_run import LifecycleRunner, finished_runs

    settings = settings_of(ctx)
    with data_services(ctx, project, storage) as data:
        runner = run_data(
            lambda: LifecycleRunner(data.catalog, finished_runs=finished_runs(settings.db_url))
        )
        if not runner.rules:
            bad_input(
                "no lifecycle rules are configured",
                hint="add a 'lifecycle:' list to the storage settings (docs/data.md)",
            )
        actions = run_data(lambda: runner.plan(time.time()))
        rows = (
            [{**a.summary(), "outcome": "planned"} for a in actions]
            if dry_run
            else run_data(lambda: runner.apply(actions))
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
