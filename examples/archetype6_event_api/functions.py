"""The functions of demo 6, registered on the server by import path.

- ``on_shot``: a webhook from the experiment (one shot: its number and measured energy)
  calls it. It records the shot in the results database, submits the simulation job (a
  two-task workflow: simulate the shower, reduce its profile) through its context, and
  registers "when that run ends, call ``postprocess``". A shot that cannot be simulated
  (an energy below the shower threshold) fails the invocation: no job, the error and its
  traceback recorded on the invocation.
- ``postprocess``: the completion event of the run calls it; it reads the reduced profile,
  compares the shower maximum with the expected one and writes the result row.

Both are safe to run again (an invocation requeued after a crash): rows are upserted, and
the context's submit and on-completion take effect once, with the invocation's result.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hexflow_examples.archetype6_event_api import results, shower

from hexflow.events import FunctionContext

SHOWER = "hexflow_examples.archetype6_event_api.shower"


def simulation_job(shot: int, energy: float, outdir: str) -> dict[str, Any]:
    """The workflow document of one shot's simulation (hexflow's JSON workflow format)."""
    base = Path(outdir) / f"shot-{shot:04d}"
    profile, summary = base.with_suffix(".profile.json"), base.with_suffix(".summary.json")
    python = sys.executable  # the server's: it runs the tasks
    return {
        "name": f"shower-shot-{shot}",
        "tasks": {
            "simulate": {
                "command": [python, "-m", SHOWER, "simulate", "--energy", str(energy),
                            "--shot", str(shot), "--out", str(profile)],
            },
            "reduce": {
                "after": "simulate",
                "command": [python, "-m", SHOWER, "reduce", "--profile", str(profile),
                            "--out", str(summary)],
            },
        },
    }  # fmt: skip


def on_shot(
    ctx: FunctionContext, shot: int, energy: float, results_db: str, outdir: str
) -> dict[str, Any]:
    """A shot arrived: record it, start its simulation, and ask to be told of the end."""
    energy = shower.check_energy(energy)  # ValueError: the invocation fails, nothing runs
    results.record_shot(results_db, shot, energy, ctx.invocation_id, time.time())
    run_id = ctx.submit(simulation_job(shot, energy, outdir))
    trigger = ctx.on_completion(
        run_id, "postprocess", {"results_db": results_db, "shot": shot, "outdir": outdir}
    )
    return {"shot": shot, "run_id": run_id, "on_completion": trigger}


def postprocess(event: dict[str, Any], results_db: str, shot: int, outdir: str) -> dict[str, Any]:
    """The simulation of ``shot`` ended (``event``: its ``run.<state>``): keep the result."""
    run_id, state = event["subject"], event["kind"].removeprefix("run.")
    row: dict[str, Any] = {"shot": shot, "run_id": run_id, "run_state": state}
    summary = Path(outdir) / f"shot-{shot:04d}.summary.json"
    if state == "succeeded":
        reduced = json.loads(summary.read_text())
        expected = shower.expected_maximum(reduced["energy"])
        row.update(
            t_max=reduced["t_max"],
            t_max_expected=round(expected, 3),
            n_max=reduced["n_max"],
            deviation=round(reduced["t_max"] - expected, 3),
        )
    row["event_seq"], row["event_at"] = event["seq"], event["at"]
    results.record_result(results_db, row, time.time())
    return row
