"""``hexflow queue``: the waiting work of active runs in priority order, each task with the
scheduler's reason for waiting (see ``hexflow.engine.queueview``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from hexflow.cli.common import JsonOpt, guard, out, settings_of
from hexflow.cli.render import print_json
from hexflow.model import RunState

_KIND_STYLE = {
    "starting": "green",
    "preempting": "magenta",
    "reservation": "cyan",
    "resources": "yellow",
    "priority": "yellow",
    "rejected": "red",
    "dependency": "dim",
    "retry": "blue",
    "not_driven": "red",
}


QUEUE_EPILOG = (
    "Reasons (the first word is stable for scripts): starting (fits now) · preempting "
    "(waits for preempt-class tasks to checkpoint and stop) · reservation (holds the machine "
    "from a time, or starting now would delay the reserved task) · resources (does not fit "
    "what is free) · priority (behind higher-priority work) · rejected · dependency "
    "(upstream tasks not done) · retry (in a backoff) · not_driven (no live engine: "
    "`hexflow resume RUN`). 'deadline at risk' marks a task that can no longer end by its "
    "deadline.  Examples: hexflow queue · hexflow queue RUN --json"
)


def queue(
    ctx: typer.Context,
    run_id: Annotated[
        str | None,
        typer.Argument(metavar="[RUN]", help="Run id or prefix; omit for every active run."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many waiting tasks.")] = 200,
    runs: Annotated[int, typer.Option(help="Look at this many most recent runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show waiting tasks in priority order, each with the scheduler's reason for waiting."""
    from hexflow.engine.queueview import number, run_queue
    from hexflow.flow.runtime import make_store

    if limit < 1 or runs < 1:
        guard(lambda: _bad("--limit and --runs must be at least 1"))
    from hexflow.cli import remote

    if remote.wanted(ctx):
        return remote.queue(ctx, run_id, limit, as_json)
    store = guard(lambda: make_store(settings_of(ctx)))
    now = time.time()
    try:
        if run_id is not None:
            chosen = [guard(lambda: store.get_run(run_id))]
        else:
            chosen = [
                r
                for r in guard(lambda: store.list_runs(runs))
                if r.state in (RunState.PENDING, RunState.RUNNING)
            ]
        rows = []
        for run in sorted(chosen, key=lambda r: r.created_at):
            records = guard(lambda run=run: store.load_tasks(run.id))
            rows.extend(run_queue(run, records, now))
    finally:
        store.close()
    rows = number(rows)[:limit]
    if as_json:
        print_json([r.as_json() for r in rows])
        return
    if not rows:
        out.print("no waiting tasks" + (f" in run {run_id}" if run_id else " in active runs"))
        return
    table = Table(title="queue (priority order)", title_justify="left")
    for col in ("#", "RUN", "TASK", "QOS", "REQUEST", "REASON"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = _KIND_STYLE.get(r.kind, "")
        reason = f"[{style}]{r.reason}[/]" if style else r.reason
        if r.at_risk and "at risk" not in r.reason:
            reason += " [red](deadline at risk)[/]"
        table.add_row(str(r.position), r.run_id, r.name, r.qos, r.resources.describe(), reason)
    out.print(table)


def _bad(message: str) -> None:
    from hexflow.errors import SpecError

    raise SpecError(message)
