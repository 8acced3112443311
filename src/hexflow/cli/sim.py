"""``hexflow sim``: replay a batch log (SWF) through a scheduling policy in virtual time.

Exit codes as in ``hexflow.cli.main``: 0 success, 2 bad input (missing or malformed log,
unknown policy, bad --nodes), 3 an internal error.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hexflow.cli.render import print_json
from hexflow.errors import HexflowError, SpecError
from hexflow.scheduler.batch import BatchPolicy
from hexflow.scheduler.swf import read_swf
from hexflow.sim import ReplayResult, replay

sim_app = typer.Typer(
    help="Facility simulator: replay batch logs through hexflow's scheduler in virtual time.",
    no_args_is_help=True,
)
_err = Console(stderr=True, soft_wrap=True)
_out = Console()

POLICIES = ", ".join(p.value for p in BatchPolicy)


def _fail(exc: HexflowError) -> None:
    _err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    if exc.hint:
        _err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    raise typer.Exit(2)


def _write_rows(result: ReplayResult, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "submit", "start", "end", "procs"])
        for row in result.jobs:
            writer.writerow([row.job_id, row.submit, row.start, row.end, row.procs])


@sim_app.command("replay")
def replay_cmd(
    log: Annotated[Path, typer.Argument(help="SWF log (.swf or .swf.gz).")],
    policy: Annotated[str, typer.Option("--policy", help=f"One of: {POLICIES}.")] = "easy",
    nodes: Annotated[
        int | None,
        typer.Option("--nodes", help="Processors of the machine (default: the log's MaxProcs)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    jobs_out: Annotated[
        Path | None,
        typer.Option("--jobs-out", help="Write one CSV row per job: id, submit, start, end."),
    ] = None,
) -> None:
    """Replay LOG through --policy and report mean wait, bounded slowdown, utilization."""
    try:
        if policy not in {p.value for p in BatchPolicy}:
            raise SpecError(f"unknown policy {policy!r}", hint=f"use one of: {POLICIES}")
        if nodes is not None and nodes <= 0:
            raise SpecError(f"--nodes must be a positive integer, got {nodes}")
        trace = read_swf(log)
        size = nodes or trace.max_procs or max((j.procs for j in trace.jobs), default=0)
        if size <= 0:
            raise SpecError(
                f"cannot tell the machine size of {log}", hint="pass --nodes N explicitly"
            )
        result = replay(trace.jobs, policy, size)
    except SpecError as exc:
        _fail(exc)
        return
    if jobs_out is not None:
        try:
            _write_rows(result, jobs_out)
        except OSError as exc:
            _fail(SpecError(f"cannot write {jobs_out}: {exc.strerror}"))
    metrics = result.metrics()
    if as_json:
        print_json(metrics)
        return
    table = Table(title=f"replay of {log.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    _out.print(table)


__all__ = ["sim_app"]
