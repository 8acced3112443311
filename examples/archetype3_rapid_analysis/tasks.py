"""Archetype 3's tasks: the instrument's readout, the realtime analysis of each frame
(deadline two minutes), the steering decision, the checkpointed lattice simulations it
launches, and the experiment's log database.

Every task notes the site it ran at (``HEXFLOW_SITE``): the demo shows where work went
when a site went down. Frames are files under the case directory; tasks pass small dicts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
from hexflow_examples.archetype3_rapid_analysis.instrument import (
    Beamline,
    expansion,
    frame,
    measure,
    relax_chain,
)

import hexflow as hx

DEADLINE = "2m"  # each analysis must be done two minutes after the run started
CHECKPOINT = "chain.npz"


def _site() -> str:
    return os.environ.get("HEXFLOW_SITE", "?")


@hx.task(cpus=1, memory="256M", walltime="1m", qos="urgent")
def acquire(index: int, temperature: float, outdir: str, cadence: float = 1.0) -> dict[str, Any]:
    """The detector's readout of frame ``index``, written where the analysis finds it."""
    time.sleep(cadence)  # the instrument's pace: one frame after another
    image = frame(Beamline(), temperature, seed=index)
    path = Path(outdir) / "frames" / f"frame_{index:03d}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, image)
    return {"index": index, "temperature": temperature, "path": str(path), "site": _site()}


@hx.task(cpus=1, memory="512M", walltime="30s", qos="realtime", deadline=DEADLINE)
def analyze(acquired: dict[str, Any], outdir: str) -> dict[str, Any]:
    """The realtime analysis: the ring's radius and the lattice spacing, within seconds of
    the frame's arrival, on whichever site is up."""
    started = time.time()
    beam = Beamline()
    found = measure(beam, np.load(acquired["path"]))
    truth = beam.spacing(acquired["temperature"])
    result = {
        "index": acquired["index"],
        "temperature": acquired["temperature"],
        "spacing": found["spacing"],
        "radius": found["radius"],
        "error": (found["spacing"] - truth) / truth,
        "site": _site(),
        "finished": time.time(),
        "seconds": time.time() - started,
    }
    path = Path(outdir) / "analysis" / f"frame_{acquired['index']:03d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


@hx.task(cpus=1, memory="256M", walltime="30s", qos="realtime", deadline=DEADLINE)
def steer(*analyses: dict[str, Any]) -> dict[str, Any]:
    """From the measured spacings, the thermal expansion; the next simulations explore the
    temperatures just beyond the ramp."""
    beam = Beamline()
    temps = [a["temperature"] for a in analyses]
    alpha = expansion(temps, [a["spacing"] for a in analyses], beam)
    nxt = [max(temps) + 50.0, max(temps) + 100.0]
    return {
        "alpha": alpha,
        "alpha_error": (alpha - beam.alpha) / beam.alpha,
        "runs": [{"temperature": t, "spacing": beam.d0 * (1 + alpha * (t - beam.t0))} for t in nxt],
        "site": _site(),
    }


@hx.task(cpus=1, memory="256M", walltime="2m", checkpoint=True, retries=1)
def simulate(
    plan: dict[str, Any], which: int, steps: int = 60, every: int = 4, pace: float = 0.1
) -> dict[str, Any]:
    """A lattice simulation at one planned temperature; checkpointed every ``every`` steps,
    so that one moved off a failing site resumes where it was."""
    run = plan["runs"][which]
    folder = hx.checkpoint_dir()
    path = folder / CHECKPOINT
    state, done, resumed = None, 0, 0
    if path.exists():
        with np.load(path) as data:
            state, done = data["x"], int(data["step"])
        resumed = done
    spacing = 0.0
    while done < steps:
        state, spacing = relax_chain(run["spacing"], run["temperature"], every, state, seed=done)
        done += every
        time.sleep(pace * every)  # the cost of a real simulation step
        tmp = folder / (CHECKPOINT + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, x=state, step=done)
        os.replace(tmp, path)
    return {
        "temperature": run["temperature"],
        "spacing": spacing,
        "expected": run["spacing"],
        "steps": steps,
        "resumed_from_step": resumed,
        "site": _site(),
    }


@hx.task(cpus=1, memory="256M", walltime="1m")
def record(db: str, analyses: list[dict[str, Any]], sims: list[dict[str, Any]]) -> dict[str, int]:
    """The experiment's log database: one row per frame and per simulation."""
    with sqlite3.connect(db) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS frames (frame INTEGER PRIMARY KEY, temperature REAL, "
            "spacing REAL, error REAL, site TEXT, finished REAL)"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS simulations (temperature REAL PRIMARY KEY, "
            "spacing REAL, resumed_from_step INTEGER, site TEXT)"
        )
        con.executemany(
            "INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?)",
            [
                (a["index"], a["temperature"], a["spacing"], a["error"], a["site"], a["finished"])
                for a in analyses
            ],
        )
        con.executemany(
            "INSERT OR REPLACE INTO simulations VALUES (?, ?, ?, ?)",
            [(s["temperature"], s["spacing"], s["resumed_from_step"], s["site"]) for s in sims],
        )
        frames = con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        simulations = con.execute("SELECT COUNT(*) FROM simulations").fetchone()[0]
    return {"frames": int(frames), "simulations": int(simulations)}
