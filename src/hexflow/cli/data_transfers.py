"""``hexflow data cp`` and ``hexflow transfers``: verified copies between tiers and local
paths, and the record of past transfers (list, show, resume).
"""

from __future__ import annotations

import time
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
        bad_input("--workers must be at least 1")
    with data_services(ctx, project, storage, workers) as data:
        started = time.monotonic()
        with progress_bar(not as_json and console.is_terminal, "copy") as bar:
            rec = run_data(lambda: data.transfers.copy(source, destination, progress=bar))
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
        bad_input("--limit must be at least 1")
    if resume and transfer_id is None:
        bad_input("--resume needs a transfer id", hint="hexflow transfers ID --resume")
    with data_services(ctx, project, storage) as data:
        if transfer_id is None:
            rows = [
                r.summary() for r in run_data(lambda: data.transfers.recent(limit, all_projects))
            ]
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
            with progress_bar(not as_json and console.is_terminal, "resume") as bar:
                rec = run_data(lambda: data.transfers.resume(transfer_id, progress=bar))
            _transfer_out(rec, as_json, started)
            return
        rec = run_data(lambda: data.transfers.get(transfer_id))
        items = run_data(lambda: data.transfers.items(rec.id))
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
