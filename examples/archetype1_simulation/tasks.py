"""The compute phases of archetype 1 as hexflow tasks: setup, the checkpointed simulation,
and the independent post-processing tasks (field statistics, energy over time, physics check).

Each phase declares the resources it needs: setup and post-processing are small serial
jobs, the simulation is the wide, long phase with retries and a checkpoint directory.
Tasks exchange small dicts of numbers and file paths; the arrays stay on disk in the
case's output directory.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hexflow_examples.archetype1_simulation import heat
from hexflow_examples.archetype1_simulation.heat import HeatParams

import hexflow as hx

HISTORY_FIELDS = ("step", "time", "heat", "max", "min", "mean", "spread")
CHECKPOINT = "state.npz"
INTERRUPT_EXIT_CODE = 75  # what the deliberately interrupted first attempt exits with


class PhysicsCheckFailed(AssertionError):
    """The simulated field disagrees with what the physics requires."""


@hx.task(cpus=1, memory="256M", walltime="2m")
def setup(params: dict[str, Any], outdir: str) -> dict[str, Any]:
    """Phase 1: check the parameters, empty the case directory, write params and grid."""
    p = HeatParams.from_dict(params)
    heat.check_stable(p)
    if p.checkpoint_every % p.record_every:
        raise ValueError("checkpoint_every must be a multiple of record_every")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():  # the case directory starts afresh on every run
        if stale.is_file():
            stale.unlink()
    (out / "params.json").write_text(json.dumps(p.to_dict(), indent=2) + "\n")
    np.save(out / "initial.npy", heat.initial_condition(p))
    return {
        "params": p.to_dict(),
        "outdir": str(out),
        "initial": str(out / "initial.npy"),
        "files": ["params.json", "initial.npy"],
    }


def save_checkpoint(folder: Path, u: heat.Grid, step_no: int, history: list[list[float]]) -> None:
    """Write atomically: a kill mid-write leaves the previous checkpoint intact."""
    tmp = folder / (CHECKPOINT + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, grid=u, step=step_no, history=np.array(history))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / CHECKPOINT)


def load_checkpoint(folder: Path) -> tuple[heat.Grid, int, list[list[float]]] | None:
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    with np.load(path) as data:
        return data["grid"], int(data["step"]), data["history"].tolist()


def history_row(u: heat.Grid, p: HeatParams, step_no: int) -> list[float]:
    obs = heat.observe(u, p, step_no)
    return [obs[k] for k in HISTORY_FIELDS]


@hx.task(
    cpus=2,
    memory="1G",
    walltime="10m",
    timeout="3m",
    retries=2,
    backoff=0.2,
    checkpoint=True,
)
def simulate(case: dict[str, Any], interrupt: bool = False) -> dict[str, Any]:
    """Phase 2: time-step the plate, checkpointing; resume from the last checkpoint.

    With ``interrupt=True`` the first attempt dies hard (``os._exit``) right after the
    first checkpoint past the halfway mark, as a node failure or preemption would.
    """
    p = HeatParams.from_dict(case["params"])
    attempt = int(os.environ.get("HEXFLOW_ATTEMPT", "1"))
    folder = hx.checkpoint_dir()
    state = load_checkpoint(folder)
    if state is None:
        u = np.load(case["initial"])
        start, history = 0, [history_row(u, p, 0)]
    else:
        u, start, history = state
    print(f"attempt {attempt}: starting at step {start} of {p.steps}", flush=True)
    for n in range(start + 1, p.steps + 1):
        u = heat.step(u, p.r)
        if n % p.record_every == 0:
            if not np.isfinite(u).all():
                raise FloatingPointError(f"the solution stopped being finite at step {n}")
            history.append(history_row(u, p, n))
        if n % p.checkpoint_every == 0 or n == p.steps:
            save_checkpoint(folder, u, n, history)
            if interrupt and attempt == 1 and 2 * n >= p.steps and n < p.steps:
                print(f"attempt 1: checkpoint at step {n} written; dying now", flush=True)
                os._exit(INTERRUPT_EXIT_CODE)
    out = Path(case["outdir"])
    np.save(out / "final.npy", u)
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HISTORY_FIELDS)
        writer.writerows(history)
    sys.stdout.flush()
    return {
        "params": p.to_dict(),
        "outdir": str(out),
        "initial": case["initial"],
        "final": str(out / "final.npy"),
        "history": str(out / "history.csv"),
        "steps": p.steps,
        "resumed_from_step": start,
        "steps_computed": p.steps - start,
        "attempt": attempt,
        "files": ["final.npy", "history.csv"],
    }


def load_history(sim: dict[str, Any]) -> dict[str, np.ndarray]:
    data = np.loadtxt(sim["history"], delimiter=",", skiprows=1, ndmin=2)
    return {name: data[:, i] for i, name in enumerate(HISTORY_FIELDS)}


@hx.task(cpus=1, memory="512M", walltime="2m")
def field_statistics(sim: dict[str, Any]) -> dict[str, float]:
    """Phase 3a: summary of the final temperature field."""
    p = HeatParams.from_dict(sim["params"])
    u = np.load(sim["final"])
    return {
        "mean_temperature": round(float(u.mean()), 6),
        "max_temperature": round(float(u.max()), 6),
        "min_temperature": round(float(u.min()), 6),
        "hot_fraction": round(float(np.mean(u > p.ambient + 1.0)), 6),
        "simulated_time": p.steps * p.dt,
    }


@hx.task(cpus=1, memory="512M", walltime="2m")
def energy_series(sim: dict[str, Any]) -> dict[str, Any]:
    """Phase 3b: total heat over time, written as energy.csv, and its largest drift."""
    h = load_history(sim)
    out = Path(sim["outdir"]) / "energy.csv"
    np.savetxt(
        out, np.column_stack([h["time"], h["heat"]]), delimiter=",", header="time,heat", comments=""
    )
    drift = np.abs(h["heat"] - h["heat"][0]) / abs(h["heat"][0])
    return {
        "heat_initial": float(h["heat"][0]),
        "heat_final": float(h["heat"][-1]),
        "max_relative_drift": float(drift.max()),
        "samples": int(len(h["heat"])),
        "files": ["energy.csv"],
    }


def physics_checks(sim: dict[str, Any], tolerance: float = 0.01) -> dict[str, Any]:
    """Compare the run with what the physics requires; plain function, so tests can call it.

    1. heat conservation: insulated edges, so the total heat may not drift (1e-9);
    2. maximum principle: the peak never rises and the coldest cell never cools;
    3. free-space spreading: the peak and the variance of the hot spot match the analytic
       Gaussian within ``tolerance`` (wrong diffusivity, time step or edges fail this).
    """
    p = HeatParams.from_dict(sim["params"])
    h = load_history(sim)
    t_end = float(h["time"][-1])
    drift = float(np.max(np.abs(h["heat"] - h["heat"][0])) / abs(h["heat"][0]))
    peak = float(h["max"][-1] - p.ambient)
    peak_err = abs(peak - heat.analytic_peak(p, t_end)) / heat.analytic_peak(p, t_end)
    var_err = abs(h["spread"][-1] - heat.analytic_variance(p, t_end)) / heat.analytic_variance(
        p, t_end
    )
    monotone = bool(np.all(np.diff(h["max"]) <= 1e-12) and np.all(np.diff(h["min"]) >= -1e-12))
    checks = {
        "heat_conserved": bool(drift < 1e-9),
        "maximum_principle": monotone,
        "peak_matches_analytic": bool(peak_err < tolerance),
        "spread_matches_analytic": bool(var_err < tolerance),
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "heat_drift": drift,
        "peak": peak,
        "peak_analytic": heat.analytic_peak(p, t_end),
        "peak_relative_error": float(peak_err),
        "spread_relative_error": float(var_err),
        "tolerance": tolerance,
    }


@hx.task(cpus=1, memory="512M", walltime="2m")
def validate_physics(sim: dict[str, Any]) -> dict[str, Any]:
    """Phase 3c: the physics gate. Writes physics.json; fails the task if a check fails."""
    result = physics_checks(sim)
    (Path(sim["outdir"]) / "physics.json").write_text(json.dumps(result, indent=2) + "\n")
    if not result["passed"]:
        failed = [name for name, ok in result["checks"].items() if not ok]
        raise PhysicsCheckFailed(f"physics checks failed: {', '.join(failed)}; {result}")
    return {**result, "files": ["physics.json"]}
