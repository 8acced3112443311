"""Archetype 1 (simulation & modeling) as a workflow, and demo 1 of the registry.

This module owns the shape of the DAG and the demo report::

    setup -> simulate (checkpointed, interrupted once, resumed)
               -> field_statistics | energy_series | validate_physics   (independent)
               -> plot_field | plot_history | plot_profile              (independent)
                    -> archive (tar over plots and data products)

and ``run(workdir)``, registered as demo 1, which runs it embedded with its state under
``workdir/.hexflow`` and its products under ``workdir/heat2d``.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow_examples.archetype1_simulation.heat import HeatParams
from hexflow_examples.archetype1_simulation.plots import (
    archive,
    plot_field,
    plot_history,
    plot_profile,
)
from hexflow_examples.archetype1_simulation.tasks import (
    energy_series,
    field_statistics,
    setup,
    simulate,
    validate_physics,
)
from hexflow_examples.registry import register

import hexflow as hx

TITLE = "Simulation & modeling: 2-D heat equation"
DESCRIPTION = (
    "A hot spot diffusing on a 128x128 insulated plate (explicit finite differences, numpy) "
    "as a multi-phase DAG with per-phase resources: setup, a checkpointed simulation whose "
    "first attempt is killed midway and resumed from its checkpoint, independent statistics "
    "and a physics check against the analytic solution, PNG plots, and a tar archive."
)
OUTDIR = "heat2d"
ARCHIVE = "heat2d-results.tar.gz"
PASS_THROUGH_ENV = ("HEXFLOW_CPUS", "HEXFLOW_MEMORY", "HEXFLOW_KILL_GRACE")


@dataclass
class Phases:
    """The futures of one built workflow, by phase."""

    case: hx.TaskFuture
    sim: hx.TaskFuture
    stats: hx.TaskFuture
    energy: hx.TaskFuture
    physics: hx.TaskFuture
    plots: list[hx.TaskFuture]
    archive: hx.TaskFuture


def build(
    workdir: Path, params: HeatParams, *, interrupt: bool = True, max_cpus: float | None = None
) -> tuple[hx.Workflow, Phases]:
    """The DAG; ``max_cpus`` narrows the simulation's request on a machine with fewer cores."""
    outdir = str(workdir / OUTDIR)
    sim_task = simulate
    if max_cpus is not None and max_cpus < simulate.options.resources.cpus:
        sim_task = simulate.with_options(cpus=max_cpus)
    with hx.Workflow("heat2d", workdir=workdir) as wf:
        case = setup(params.to_dict(), outdir)
        sim = sim_task(case, interrupt=interrupt)
        stats = field_statistics(sim)
        energy = energy_series(sim)
        physics = validate_physics(sim)
        plots = [plot_field(sim), plot_history(sim), plot_profile(sim)]
        tarball = archive(outdir, str(workdir / ARCHIVE), plots, [case, sim, energy, physics])
    return wf, Phases(case, sim, stats, energy, physics, plots, tarball)


def _outcome(future: hx.TaskFuture) -> tuple[Any, str | None]:
    try:
        return future.result(), None
    except Exception as exc:  # noqa: BLE001 - a failed phase becomes part of the report
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:500]}"


def _archive_facts(path: Path, written: bool) -> dict[str, Any]:
    """What the archive holds; a file left by an earlier run in the same workdir is ignored."""
    if not (written and path.is_file()):
        return {"path": str(path), "written": False}
    with tarfile.open(path, "r:gz") as tar:
        members = sorted(tar.getnames())
    return {"path": str(path), "written": True, "bytes": path.stat().st_size, "members": members}


def _physics_file(workdir: Path) -> dict[str, Any] | None:
    """The gate's figures when it failed (it writes physics.json before failing)."""
    path = workdir / OUTDIR / "physics.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def report(run: hx.Run, phases: Phases, workdir: Path, *, interrupt: bool = True) -> dict[str, Any]:
    """The demo's figures, and ``ok`` only if every phase, the resume and the physics held."""
    errors: dict[str, str] = {}

    def value(future: hx.TaskFuture) -> Any:
        result, error = _outcome(future)
        if error is not None:
            errors[future.task_id] = error
        return result

    sim = value(phases.sim) or {}
    stats = value(phases.stats)
    energy = value(phases.energy)
    physics = value(phases.physics)
    pngs = [p for p in (value(f) for f in phases.plots) if p and Path(p).is_file()]
    value(phases.case)
    value(phases.archive)
    archived = phases.archive.state == "succeeded"
    if physics is None and phases.physics.state == "failed":
        physics = _physics_file(workdir)
    sim_record = phases.sim.record
    resumed_from = sim.get("resumed_from_step")
    checks = {
        "all_tasks_succeeded": run.ok and not errors,
        "resumed_from_checkpoint": bool(resumed_from) or not interrupt,
        "physics_passed": bool(physics and physics.get("passed")),
        "plots_written": len(pngs) == len(phases.plots),
    }
    return {
        "ok": all(checks.values()),
        "run_id": run.id,
        "tasks": run.counts(),
        "checks": checks,
        "steps_simulated": sim.get("steps"),
        "resumed_from_step": resumed_from,
        "steps_after_resume": sim.get("steps_computed"),
        "simulation_attempts": sim_record.attempt if sim_record else None,
        "final_stats": stats,
        "energy": {k: v for k, v in (energy or {}).items() if k != "files"} or None,
        "physics": {k: v for k, v in (physics or {}).items() if k != "files"} or None,
        "pngs": pngs,
        "archive": _archive_facts(workdir / ARCHIVE, archived),
        "errors": errors,
    }


def demo_settings(workdir: Path) -> hx.Settings:
    """Settings whose store and run files live in ``workdir/.hexflow``."""
    env = {k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)}
    env["HEXFLOW_HOME"] = str(workdir / ".hexflow")
    return hx.Settings.from_env(env=env, cwd=workdir)


@register(1, TITLE, DESCRIPTION)
def run(workdir: Path) -> dict[str, Any]:
    workdir = Path(workdir).resolve()
    settings = demo_settings(workdir)
    wf, phases = build(
        workdir, HeatParams(), interrupt=True, max_cpus=settings.cpus or os.cpu_count()
    )
    return report(wf.run(settings=settings), phases, workdir, interrupt=True)
