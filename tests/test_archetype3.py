"""Archetype 3 (cross-facility rapid analysis): the instrument's physics and its analysis,
and demo 3 end to end — a site taken down mid-run, its work finished at the other site."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hexflow_examples.archetype3_rapid_analysis import instrument
from hexflow_examples.archetype3_rapid_analysis.instrument import Beamline
from hexflow_examples.registry import DEMOS, run_demo


def test_the_analysis_recovers_the_lattice_spacing_and_the_expansion() -> None:
    beam = Beamline()
    temps = instrument.ramp(6, step=50.0)
    found = [
        instrument.measure(beam, instrument.frame(beam, t, seed=i)) for i, t in enumerate(temps)
    ]
    for t, f in zip(temps, found, strict=True):
        assert abs(f["spacing"] - beam.spacing(t)) / beam.spacing(t) < 2e-3
    alpha = instrument.expansion(temps, [f["spacing"] for f in found], beam)
    assert abs(alpha - beam.alpha) / beam.alpha < 0.1


def test_the_ring_moves_inward_as_the_lattice_expands() -> None:
    beam = Beamline()
    assert beam.radius(beam.spacing(300)) > beam.radius(beam.spacing(700))
    assert beam.spacing_at(beam.radius(2.0e-10)) == pytest.approx(2.0e-10, rel=1e-12)
    assert 0 < beam.radius(beam.d0) < beam.pixels / 2  # the ring is on the detector


def test_the_lattice_simulation_keeps_its_spacing() -> None:
    x, spacing = instrument.relax_chain(2.0e-10, 500.0, 20, None, seed=1)
    assert spacing == pytest.approx(2.0e-10, rel=1e-3) and np.all(np.diff(x) > 0)


def test_demo_3_is_registered() -> None:
    assert 3 in DEMOS and "failover" in DEMOS[3].title.lower()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_3_end_to_end(tmp_path: Path) -> None:
    report = run_demo(3, tmp_path)
    assert report["ok"], json.dumps(report, indent=2)
    assert report["checks"]["frames_analysed_at_both_sites"]
    assert report["baseline"]["site"] == "alcf" and report["baseline"]["resumed_from_step"] > 0
    assert all("site nersc is down" in m["reason"] for m in report["moves"])
    with sqlite3.connect(report["log_database"]) as con:
        sites = {row[0] for row in con.execute("SELECT site FROM frames")}
    assert sites == {"nersc", "alcf"}
