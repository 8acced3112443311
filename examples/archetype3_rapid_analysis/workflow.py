"""Archetype 3 (cross-facility rapid analysis & steering) as a workflow, and demo 3.

This module owns the shape of the DAG, the two sites of the demo and the report::

    acquire(frame i) -> analyze (realtime, deadline 2 min)  x N frames, one per second
                                 \\-> steer -> simulate x 2 (checkpointed)
    simulate (baseline, checkpointed)                        -> record (log database)

and ``run(workdir)``, registered as demo 3: two sites on this machine, ``nersc`` (the
preferred one) and ``alcf``, described in ``workdir/sites.yaml``; once the first analyses
are done at nersc, an operator takes nersc down (``hexflow sites set nersc down``) and
hexflow moves its queued frames and its running simulation to alcf, the simulation
resuming from its checkpoint. Embedded: no server, no batch system.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow_examples.archetype3_rapid_analysis.instrument import Beamline, ramp
from hexflow_examples.archetype3_rapid_analysis.tasks import (
    acquire,
    analyze,
    record,
    simulate,
    steer,
)
from hexflow_examples.registry import register

import hexflow as hx

TITLE = "Cross-facility rapid analysis: failover to another site"
DESCRIPTION = (
    "Diffraction frames of a heated sample arrive from a detector; each is analysed on the "
    "realtime QoS within a two-minute deadline, a steering step fits the thermal expansion "
    "and launches lattice simulations, and a log database records it all. Two sites on this "
    "machine; the preferred one is taken down mid-run: its queued frames and its running, "
    "checkpointed simulation move to the other site and finish there."
)
OUTDIR = "rapid"
FRAMES = 8
CADENCE = 1.0  # seconds between two frames from the detector
SITES_FILE = """\
# demo 3: two sites on this machine (docs/sites.md)
check_interval: 0.2s
move_timeout: 10s
sites:
  nersc:
    executor: local
    priority: 10
    description: the preferred facility
    local: {cpus: 2}
    storage: [qss, pss]
  alcf:
    executor: local
    priority: 0
    description: the partner facility
    local: {cpus: 2}
"""
PASS_THROUGH_ENV = ("HEXFLOW_KILL_GRACE",)


@dataclass
class Parts:
    analyses: list[hx.TaskFuture]
    plan: hx.TaskFuture
    baseline: hx.TaskFuture
    sims: list[hx.TaskFuture]
    log: hx.TaskFuture


def build(
    workdir: Path, frames: int = FRAMES, cadence: float = CADENCE
) -> tuple[hx.Workflow, Parts]:
    outdir = str(workdir / OUTDIR)
    beam = Beamline()
    baseline_plan = {"runs": [{"temperature": beam.t0, "spacing": beam.d0}]}
    with hx.Workflow("rapid-analysis", workdir=workdir) as wf:
        baseline = simulate.with_options(name="baseline")(baseline_plan, 0, steps=60)
        analyses, previous = [], None
        for i, temperature in enumerate(ramp(frames, step=50.0)):
            # the detector delivers one frame after another, every ``cadence`` seconds
            after = [previous] if previous is not None else []
            previous = acquire.with_options(after=after)(i, temperature, outdir, cadence)
            analyses.append(analyze(previous, outdir))
        plan = steer(*analyses)
        sims = [simulate(plan, k, steps=12) for k in range(2)]
        log = record(str(workdir / OUTDIR / "experiment.db"), analyses, [baseline, *sims])
    return wf, Parts(analyses, plan, baseline, sims, log)


def demo_settings(workdir: Path) -> hx.Settings:
    """The demo's settings: its home and sites file under ``workdir``."""
    (workdir / "sites.yaml").write_text(SITES_FILE)
    env = {k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)}
    env["HEXFLOW_HOME"] = str(workdir / ".hexflow")
    env["HEXFLOW_SITES"] = str(workdir / "sites.yaml")
    return hx.Settings.from_env(env=env, cwd=workdir)


def hexflow_cli(settings: hx.Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``hexflow ARGS`` against the demo's home, as an operator would type it."""
    env = {
        **os.environ,
        "HEXFLOW_HOME": str(settings.home),
        "HEXFLOW_SITES": str(settings.workdir / "sites.yaml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "hexflow.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Operator(threading.Thread):
    """Takes nersc down once ``after`` frames have been analysed there."""

    def __init__(self, settings: hx.Settings, workdir: Path, after: int = 2) -> None:
        super().__init__(name="demo3-operator", daemon=True)
        self.settings, self.folder, self.after = settings, workdir / OUTDIR / "analysis", after
        self.at: float | None = None
        self.error: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self._halt.is_set() and time.monotonic() < deadline:
            if len(list(self.folder.glob("*.json"))) >= self.after:
                self.at = time.time()
                done = hexflow_cli(
                    self.settings, "sites", "set", "nersc", "down", "--reason", "cooling failure"
                )
                if done.returncode != 0:
                    self.error = done.stderr.strip()[-500:]
                return
            self._halt.wait(0.05)

    def stop(self) -> None:
        self._halt.set()


def report(run: hx.Run, parts: Parts, workdir: Path, operator: Operator) -> dict[str, Any]:
    """The demo's figures, and ``ok`` only if the failover and the science held."""
    errors: dict[str, str] = {}

    def value(future: hx.TaskFuture) -> Any:
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - a failed task becomes part of the report
            errors[future.task_id] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            return None

    analyses = [a for a in (value(f) for f in parts.analyses) if a]
    plan = value(parts.plan) or {}
    baseline = value(parts.baseline) or {}
    sims = [s for s in (value(f) for f in parts.sims) if s]
    log = value(parts.log) or {}
    moves = [{"task": rec.id, **move.as_dict()} for rec in run.tasks.values() for move in rec.moves]
    started = run.record.started_at or 0.0
    late = [a["index"] for a in analyses if a["finished"] - started > 120]
    where: dict[str, int] = {}
    for a in analyses:
        where[a["site"]] = where.get(a["site"], 0) + 1
    checks = {
        "all_tasks_succeeded": run.ok and not errors,
        "every_frame_analysed_within_its_deadline": len(analyses) == len(parts.analyses)
        and not late,
        "spacings_within_0.2_percent": bool(analyses)
        and all(abs(a["error"]) < 2e-3 for a in analyses),
        "expansion_within_10_percent": abs(plan.get("alpha_error", 1.0)) < 0.1,
        "nersc_went_down_mid_run": operator.at is not None and operator.error is None,
        "work_moved_to_alcf": bool(moves) and all(m["to"] == "alcf" for m in moves),
        "frames_analysed_at_both_sites": set(where) == {"nersc", "alcf"},
        "baseline_resumed_from_checkpoint_at_alcf": baseline.get("site") == "alcf"
        and baseline.get("resumed_from_step", 0) > 0,
        "log_database_complete": log.get("frames") == len(parts.analyses)
        and log.get("simulations") == 1 + len(parts.sims),
    }
    return {
        "ok": all(checks.values()),
        "run_id": run.id,
        "tasks": run.counts(),
        "checks": checks,
        "analyses_by_site": where,
        "moves": moves,
        "outage_after_seconds": round(operator.at - started, 2) if operator.at else None,
        "alpha_measured": plan.get("alpha"),
        "alpha_true": Beamline().alpha,
        "baseline": {k: baseline.get(k) for k in ("site", "resumed_from_step", "steps")},
        "simulations": [{k: s[k] for k in ("temperature", "spacing", "site")} for s in sims],
        "log_database": str(workdir / OUTDIR / "experiment.db"),
        "log_rows": log,
        "operator_error": operator.error,
        "errors": errors,
    }


@register(3, TITLE, DESCRIPTION)
def run(workdir: Path) -> dict[str, Any]:
    workdir = Path(workdir).resolve()
    settings = demo_settings(workdir)
    hexflow_cli(settings, "sites", "clear", "nersc")  # a rerun in the same directory
    wf, parts = build(workdir)
    operator = Operator(settings, workdir)
    operator.start()
    try:
        result = wf.run(settings=settings)
    finally:
        operator.stop()
        operator.join(5)
        hexflow_cli(settings, "sites", "clear", "nersc")
    return report(result, parts, workdir, operator)
