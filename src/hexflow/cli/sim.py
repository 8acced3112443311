"""``hexflow sim``: replay batch logs (SWF) in virtual time; make synthetic ones.

``replay`` runs a log through the one-machine batch policies (``--scheduler batch``, the
default) or through the facility policy on nodes and pools (``--scheduler facility``,
optionally elastic by ``--plan``). ``synth`` writes a seeded synthetic log. Exit codes as
in ``hexflow.cli.main``: 0 success, 2 bad input (missing or malformed log or plan, unknown
policy or scheduler, bad sizes), 3 an internal error.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hexflow.cli.render import print_json
from hexflow.errors import HexflowError, SpecError
from hexflow.scheduler.batch import BatchPolicy
from hexflow.scheduler.decisions import PolicyConfig
from hexflow.scheduler.swf import SwfTrace, read_swf, write_swf
from hexflow.sim import (
    FacilityResult,
    ReplayResult,
    SynthConfig,
    load_plan,
    replay,
    replay_facility,
    stateless,
    synthesize,
)

sim_app = typer.Typer(
    help="Facility simulator: replay batch logs through hexflow's scheduler in virtual time.",
    no_args_is_help=True,
)
_err = Console(stderr=True, soft_wrap=True)
_out = Console()

POLICIES = ", ".join(p.value for p in BatchPolicy)
SCHEDULERS = ("batch", "facility")
# The facility policy's strictness: EASY backfilling on, or strict priority order.
FACILITY_POLICIES = {"easy": True, "fcfs": False}


def _fail(exc: HexflowError) -> None:
    _err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    if exc.hint:
        _err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    raise typer.Exit(2)


def _write_rows(result: ReplayResult, path: Path, facility: bool) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["id", "submit", "start", "end", "procs"]
        writer.writerow(header + ["pool", "nodes"] if facility else header)
        for row in result.jobs:
            values: list[object] = [row.job_id, row.submit, row.start, row.end, row.procs]
            if facility:
                values += [row.pool, " ".join(row.nodes)]
            writer.writerow(values)


def _machine_size(trace: SwfTrace, log: Path, nodes: int | None) -> int:
    size = nodes or trace.max_procs or max((j.procs for j in trace.jobs), default=0)
    if size <= 0:
        raise SpecError(f"cannot tell the machine size of {log}", hint="pass --nodes N explicitly")
    return size


def _check_options(
    scheduler: str, policy: str, nodes: int | None, cores_per_node: int | None, plan: Path | None
) -> None:
    if scheduler not in SCHEDULERS:
        raise SpecError(
            f"unknown scheduler {scheduler!r}", hint="use one of: " + ", ".join(SCHEDULERS)
        )
    if policy not in {p.value for p in BatchPolicy}:
        raise SpecError(f"unknown policy {policy!r}", hint=f"use one of: {POLICIES}")
    if nodes is not None and nodes <= 0:
        raise SpecError(f"--nodes must be a positive integer, got {nodes}")
    if cores_per_node is not None and cores_per_node <= 0:
        raise SpecError(f"--cores-per-node must be a positive integer, got {cores_per_node}")
    if scheduler == "batch" and (cores_per_node is not None or plan is not None):
        raise SpecError(
            "--cores-per-node and --plan apply to the facility policy only",
            hint="add --scheduler facility",
        )
    if scheduler == "facility" and policy not in FACILITY_POLICIES:
        raise SpecError(
            f"the facility policy has no {policy!r} mode",
            hint="use --policy easy (backfilling) or fcfs (strict priority order)",
        )


@sim_app.command("replay")
def replay_cmd(
    log: Annotated[Path, typer.Argument(help="SWF log (.swf or .swf.gz).")],
    policy: Annotated[str, typer.Option("--policy", help=f"One of: {POLICIES}.")] = "easy",
    scheduler: Annotated[
        str,
        typer.Option(
            "--scheduler",
            help="batch: one machine of N processors; facility: the facility policy on "
            "nodes and pools (--policy easy or fcfs).",
        ),
    ] = "batch",
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            help="batch: processors of the machine (default: the log's MaxProcs); "
            "facility: nodes (default: MaxProcs / --cores-per-node, rounded up).",
        ),
    ] = None,
    cores_per_node: Annotated[
        int | None, typer.Option("--cores-per-node", help="facility: cores per node (1).")
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="facility: elastic plan (YAML): pools by time of day."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    jobs_out: Annotated[
        Path | None,
        typer.Option(
            "--jobs-out",
            help="Write one CSV row per job: id, submit, start, end, procs "
            "(facility: and pool, nodes).",
        ),
    ] = None,
) -> None:
    """Replay LOG through --policy and report mean wait, bounded slowdown, utilization."""
    facility: FacilityResult | None = None
    try:
        _check_options(scheduler, policy, nodes, cores_per_node, plan)
        trace = read_swf(log)
        if scheduler == "batch":
            result = replay(trace.jobs, policy, _machine_size(trace, log, nodes))
        else:
            cores = cores_per_node or 1
            count = nodes or math.ceil(_machine_size(trace, log, None) / cores)
            facility = replay_facility(
                trace.jobs,
                count,
                cores,
                plan=load_plan(plan, count) if plan is not None else None,
                clock_origin=trace.clock_origin,
                policy=stateless(PolicyConfig(backfill=FACILITY_POLICIES[policy])),
            )
            result = facility.summary
    except SpecError as exc:
        _fail(exc)
        return
    if jobs_out is not None:
        try:
            _write_rows(result, jobs_out, facility is not None)
        except OSError as exc:
            _fail(SpecError(f"cannot write {jobs_out}: {exc.strerror}"))
    if as_json:
        print_json(facility.metrics() if facility is not None else result.metrics())
        return
    _print_table(f"replay of {log.name}", result.metrics())
    if facility is not None:
        _out.print(f"scheduler facility, {facility.cores_per_node} cores per node, "
                   f"{facility.passes:,} decision passes", highlight=False)  # fmt: skip
        pools = Table(title="pools (nodes: fewest and most held)")
        for column in ("pool", "min", "max", "node-hours", "util", "jobs", "mean wait s"):
            pools.add_column(column, justify="left" if column == "pool" else "right")
        for p in facility.pools:
            pools.add_row(p.name, str(p.fewest_nodes), str(p.most_nodes), f"{p.node_hours:,.0f}",
                          f"{p.utilization:.3f}", f"{p.jobs:,}", f"{p.mean_wait:,.0f}")  # fmt: skip
        _out.print(pools)


def _print_table(title: str, metrics: dict[str, float | int | str]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    _out.print(table)


@sim_app.command("synth")
def synth_cmd(
    jobs: Annotated[int, typer.Option("--jobs", help="Number of jobs.")],
    cores: Annotated[int, typer.Option("--cores", help="Processors of the machine.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="SWF file to write (.gz ok).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same log).")] = 0,
    load: Annotated[
        float, typer.Option("--load", help="Offered load: work asked / machine capacity.")
    ] = 0.85,
    max_job_cores: Annotated[
        int | None, typer.Option("--max-job-cores", help="Largest job (default cores / 8).")
    ] = None,
    interactive: Annotated[
        float, typer.Option("--interactive", help="Share of short interactive jobs (queue 0).")
    ] = 0.15,
) -> None:
    """Write a seeded synthetic SWF log: lognormal run times, power-of-two-ish sizes, a
    daily arrival cycle and overestimated walltimes."""
    try:
        config = SynthConfig(
            jobs=jobs,
            cores=cores,
            seed=seed,
            load=load,
            max_job_cores=max_job_cores,
            interactive=interactive,
        )
        trace = synthesize(config)
        write_swf(trace, output)
    except SpecError as exc:
        _fail(exc)
        return
    span = trace.jobs[-1].submit / 86_400
    _out.print(
        f"wrote {len(trace.jobs):,} jobs for {cores:,} processors over {span:,.1f} days "
        f"to {output}",
        highlight=False,
    )


__all__ = ["sim_app"]
