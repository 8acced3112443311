"""Archetype 1 (heat-equation simulation): the numerical kernel, the physics gate, the
checkpoint resume, the demo registry, and demo 1 end to end (slow)."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hexflow_examples.archetype1_simulation import heat
from hexflow_examples.archetype1_simulation.heat import HeatParams
from hexflow_examples.archetype1_simulation.tasks import (
    HISTORY_FIELDS,
    history_row,
    physics_checks,
    save_checkpoint,
    simulate,
)
from hexflow_examples.archetype1_simulation.workflow import build, demo_settings
from hexflow_examples.archetype1_simulation.workflow import report as workflow_report
from hexflow_examples.registry import DEMOS, get_demo, register, run_demo

import hexflow as hx

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = HeatParams(n=64, steps=200, checkpoint_every=50, record_every=10, sigma0=0.06)


# ---------------------------------------------------------------- numerical kernel
def test_stability_check_rejects_a_too_large_time_step() -> None:
    heat.check_stable(HeatParams(r=heat.STABILITY_LIMIT))
    with pytest.raises(heat.UnstableTimeStep, match="unstable"):
        heat.check_stable(HeatParams(r=0.3))
    with pytest.raises(heat.UnstableTimeStep):
        heat.check_stable(HeatParams(r=0.0))


def test_the_stability_limit_is_real() -> None:
    """Past r = 1/4 the scheme blows up; at the limit it stays bounded."""
    u0 = heat.initial_condition(SMALL)
    u0 = u0 + 1e-3 * np.random.default_rng(0).standard_normal(u0.shape)
    assert np.abs(heat.advance(u0, 0.30, 300)).max() > 1e6
    assert heat.advance(u0, 0.25, 300).max() <= u0.max()


def test_heat_stays_finite_and_is_conserved() -> None:
    u0 = heat.initial_condition(SMALL)
    u = heat.advance(u0, SMALL.r, SMALL.steps)
    assert np.isfinite(u).all()
    before, after = heat.total_heat(u0, SMALL), heat.total_heat(u, SMALL)
    assert abs(after - before) / before < 1e-12
    assert u.max() < u0.max() and u.min() >= SMALL.ambient  # maximum principle


def test_solution_keeps_the_symmetry_of_the_hot_spot() -> None:
    u = heat.advance(heat.initial_condition(SMALL), SMALL.r, SMALL.steps)
    assert np.allclose(u, u.T, rtol=0, atol=1e-12)
    assert np.allclose(u, u[::-1, :], rtol=0, atol=1e-12)
    assert np.allclose(u, u[:, ::-1], rtol=0, atol=1e-12)


def test_spreading_follows_the_analytic_variance() -> None:
    p = HeatParams()
    u = heat.advance(heat.initial_condition(p), p.r, 400)
    t = 400 * p.dt
    assert heat.spread(u, p) == pytest.approx(heat.analytic_variance(p, t), rel=5e-3)
    assert u.max() - p.ambient == pytest.approx(heat.analytic_peak(p, t), rel=5e-3)


# ---------------------------------------------------------------- the physics gate
def _history_case(
    tmp_path: Path, p: HeatParams, claimed: HeatParams | None = None
) -> dict[str, Any]:
    """Simulate ``p`` and write its history.csv; describe it as ``claimed`` parameters."""
    u = heat.initial_condition(p)
    rows = [history_row(u, p, 0)]
    for n in range(1, p.steps + 1):
        u = heat.step(u, p.r)
        if n % p.record_every == 0:
            rows.append(history_row(u, p, n))
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HISTORY_FIELDS)
        writer.writerows(rows)
    return {"params": (claimed or p).to_dict(), "history": str(path)}


def test_physics_check_passes_a_correct_run(tmp_path: Path) -> None:
    result = physics_checks(_history_case(tmp_path, HeatParams(steps=400)))
    assert result["passed"], result
    assert result["heat_drift"] < 1e-12


def test_physics_check_fails_a_run_with_the_wrong_diffusivity(tmp_path: Path) -> None:
    true = HeatParams(steps=400)
    claimed = HeatParams(steps=400, alpha=1.2, r=true.r * 1.2)  # same dt, other physics
    result = physics_checks(_history_case(tmp_path, true, claimed))
    assert not result["passed"]
    assert not result["checks"]["spread_matches_analytic"]
    assert result["checks"]["heat_conserved"]


def test_physics_check_fails_when_heat_leaks(tmp_path: Path) -> None:
    case = _history_case(tmp_path, HeatParams(steps=200))
    data = np.loadtxt(case["history"], delimiter=",", skiprows=1)
    data[-1, HISTORY_FIELDS.index("heat")] *= 0.999
    np.savetxt(case["history"], data, delimiter=",", header=",".join(HISTORY_FIELDS), comments="")
    result = physics_checks(case)
    assert not result["passed"] and not result["checks"]["heat_conserved"]


# ---------------------------------------------------------------- checkpoint resume
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = SMALL
    u0 = heat.initial_condition(p)
    np.save(tmp_path / "initial.npy", u0)
    u, history = u0, [history_row(u0, p, 0)]
    for n in range(10, 101, 10):
        u = heat.advance(u, p.r, 10)
        history.append(history_row(u, p, n))
    (tmp_path / "ckpt").mkdir()
    save_checkpoint(tmp_path / "ckpt", u, 100, history)
    monkeypatch.setenv("HEXFLOW_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.setenv("HEXFLOW_ATTEMPT", "2")
    case = {
        "params": p.to_dict(),
        "outdir": str(tmp_path),
        "initial": str(tmp_path / "initial.npy"),
    }
    result = simulate.fn(case, interrupt=True)  # attempt 2: the interrupt no longer fires
    assert result["resumed_from_step"] == 100 and result["steps_computed"] == 100
    assert np.array_equal(np.load(result["final"]), heat.advance(u0, p.r, p.steps))
    rows = np.loadtxt(result["history"], delimiter=",", skiprows=1)
    assert rows[:, 0].tolist() == list(range(0, p.steps + 1, p.record_every))


# ---------------------------------------------------------------- registry
def test_registry_lists_demo_1() -> None:
    demo = DEMOS[1]
    assert demo.number == 1 and "heat" in demo.title and demo.description
    assert get_demo(1) is demo


def test_unknown_demo_is_a_spec_error_listing_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(hx.SpecError, match=r"no demo 99; available: 1 \("):
        run_demo(99, tmp_path)


def test_a_demo_number_cannot_be_taken_twice() -> None:
    with pytest.raises(hx.SpecError, match="already registered"):

        @register(1, "impostor", "takes demo 1")
        def impostor(workdir: Path) -> dict[str, Any]:
            return {"ok": True}


# ---------------------------------------------------------------- end to end
EXPECTED_MEMBERS = {
    "params.json",
    "initial.npy",
    "final.npy",
    "history.csv",
    "energy.csv",
    "physics.json",
    "field.png",
    "history.png",
    "profile.png",
}


@pytest.mark.slow
def test_demo_1_runs_end_to_end(tmp_path: Path) -> None:
    report = run_demo(1, tmp_path)
    json.dumps(report)  # the CLI prints it as JSON
    assert report["ok"] is True, json.dumps(report, indent=2)
    assert report["demo"] == 1 and report["run_id"] and report["seconds"] < 60
    assert report["tasks"] == {"succeeded": 9}
    assert report["steps_simulated"] == HeatParams().steps
    assert 0 < report["resumed_from_step"] < report["steps_simulated"]
    assert report["simulation_attempts"] == 2
    assert report["physics"]["passed"] and all(report["physics"]["checks"].values())
    assert report["final_stats"]["max_temperature"] < HeatParams().ambient + HeatParams().amplitude
    assert len(report["pngs"]) == 3
    for png in report["pngs"]:
        assert Path(png).read_bytes()[:8] == PNG_MAGIC
    archive = Path(report["archive"]["path"])
    assert report["archive"]["written"] and report["archive"]["bytes"] == archive.stat().st_size
    assert set(report["archive"]["members"]) == EXPECTED_MEMBERS
    with tarfile.open(archive, "r:gz") as tar:
        assert set(tar.getnames()) == EXPECTED_MEMBERS
        png = tar.extractfile("field.png")
        assert png is not None and png.read(8) == PNG_MAGIC


@pytest.mark.slow
def test_a_failed_physics_check_fails_the_run_and_archives_nothing(tmp_path: Path) -> None:
    """Run long enough for the spot to reach the edges: the free-space check must fail."""
    wf, phases = build(tmp_path, HeatParams(steps=3000, checkpoint_every=500), interrupt=False)
    report = workflow_report(wf.run(settings=demo_settings(tmp_path)), phases, tmp_path)
    assert report["ok"] is False
    assert report["checks"]["physics_passed"] is False
    assert report["physics"]["checks"]["spread_matches_analytic"] is False
    assert report["tasks"] == {"succeeded": 7, "failed": 1, "upstream_failed": 1}
    assert set(report["errors"]) == {"validate_physics-1", "archive-1"}
    assert report["archive"]["written"] is False
    assert not (tmp_path / "heat2d-results.tar.gz").exists()
