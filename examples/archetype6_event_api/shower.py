"""The simulation job of demo 6: an electromagnetic shower started by a particle of the
experiment's measured energy, and its reduction. Pure numpy; also a command line, which is
what the job's tasks run::

    python -m hexflow_examples.archetype6_event_api.shower simulate --energy 50 --shot 3 --out P
    python -m hexflow_examples.archetype6_event_api.shower reduce --profile P --out S

The longitudinal profile is Greisen's: ``N(t) = 0.31/sqrt(y) exp(t (1 - 1.5 ln s))`` with
``y = ln(E/Ec)`` and the shower age ``s = 3t/(t + 2y)``; the number of particles at each
depth is drawn from a Poisson law. Its maximum lies at ``t = y`` radiation lengths, which
is what the post-processing checks the reduced profile against.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

CRITICAL_ENERGY = 0.0848  # GeV, in air
DEPTH = 40.0  # radiation lengths simulated
STEPS = 800


def expected_maximum(energy: float) -> float:
    """Depth of the shower maximum (radiation lengths) of a primary of ``energy`` GeV."""
    return math.log(energy / CRITICAL_ENERGY)


def check_energy(energy: Any) -> float:
    if isinstance(energy, bool) or not isinstance(energy, int | float) or not math.isfinite(energy):
        raise ValueError(f"energy must be a number of GeV, got {energy!r}")
    if energy <= CRITICAL_ENERGY * 2:
        raise ValueError(
            f"energy {energy} GeV is below twice the critical energy ({CRITICAL_ENERGY} GeV): "
            "no shower develops"
        )
    return float(energy)


def simulate(energy: float, seed: int) -> dict[str, Any]:
    """The sampled longitudinal profile of one shower."""
    energy = check_energy(energy)
    y = expected_maximum(energy)
    t = np.linspace(DEPTH / STEPS, DEPTH, STEPS)
    age = 3 * t / (t + 2 * y)
    mean = 0.31 / math.sqrt(y) * np.exp(t * (1 - 1.5 * np.log(age)))
    counts = np.random.default_rng(seed).poisson(mean)
    return {"energy": energy, "depth": t.tolist(), "particles": counts.tolist()}


def reduce(profile: dict[str, Any]) -> dict[str, Any]:
    """The shower maximum from a sampled profile: the profile smoothed over one radiation
    length, and a parabola through its top."""
    t = np.asarray(profile["depth"], dtype=float)
    n = np.asarray(profile["particles"], dtype=float)
    if t.size < 5 or t.size != n.size:
        raise ValueError("a profile needs at least 5 depths, each with a particle count")
    step = float(t[1] - t[0])
    width = max(1, round(1.0 / step))  # smooth over one radiation length
    smooth = np.convolve(n, np.ones(width) / width, mode="same")
    peak = int(np.argmax(smooth))
    near = np.abs(t - t[peak]) <= 1.5  # a parabola through the top of the smoothed curve
    a, b, _ = np.polyfit(t[near] - t[peak], smooth[near], 2)
    t_max = float(t[peak] - b / (2 * a)) if a < 0 else float(t[peak])
    return {
        "energy": profile["energy"],
        "t_max": round(t_max, 3),
        "n_max": int(round(smooth[peak])),
        "particles": int(n.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shower", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sim = sub.add_parser("simulate")
    sim.add_argument("--energy", type=float, required=True)
    sim.add_argument("--shot", type=int, required=True)
    sim.add_argument("--out", type=Path, required=True)
    red = sub.add_parser("reduce")
    red.add_argument("--profile", type=Path, required=True)
    red.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.step == "simulate":
            result = simulate(args.energy, seed=args.shot)
        else:
            result = reduce(json.loads(args.profile.read_text()))
    except (ValueError, OSError) as exc:
        print(f"shower {args.step}: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.out)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
