"""Archetype 5 (data lifecycle): the instrument and the science checks, the demo end to end
through the registry, a raw file damaged after registration caught when it is staged, and
the example notebook executed cell by cell."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hexflow_examples.archetype5_data_lifecycle import workflow as demo
from hexflow_examples.archetype5_data_lifecycle.source import Campaign, acquire
from hexflow_examples.archetype5_data_lifecycle.tasks import check_science
from hexflow_examples.registry import DEMOS, run_demo

NOTEBOOK = (
    Path(__file__).resolve().parent.parent / "examples/archetype5_data_lifecycle/archetype5.ipynb"
)


def test_the_instrument_is_deterministic_and_says_what_it_measured(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    truth = acquire(a)
    assert acquire(b) == truth
    assert (a / "scan-003.npy").read_bytes() == (b / "scan-003.npy").read_bytes()
    c = Campaign()
    assert truth["peaks"][4] == c.peak_positions(4) and len(truth["peaks"]) == c.scans
    assert np.load(a / "frames.npy").nbytes > 8 << 20  # large enough for the kernel copy


def test_the_science_check_fails_wrong_answers() -> None:
    truth = {"peaks": [[100.0, 200.0]], "drift": 1.0}
    good = {
        "alice": {"peaks": [[100.3, 199.8]]},
        "bob": {"max_channel": 1012},
        "carol": {"channels_per_scan": 1.02},
    }
    assert all(check_science(truth, good).values())
    bad = {**good, "alice": {"peaks": [[102.0, 200.0]]}, "carol": {"channels_per_scan": 1.2}}
    checks = check_science(truth, bad)
    assert not checks["peaks_within_1_channel"] and not checks["drift_within_5_percent"]


def test_demo_5_runs_end_to_end(tmp_path: Path) -> None:
    assert 5 in DEMOS and "lifecycle" in DEMOS[5].title.lower()
    report = run_demo(5, tmp_path)
    json.dumps(report)  # the CLI prints it as JSON
    assert report["ok"] is True, json.dumps(report, indent=2)
    assert all(report["checks"].values())
    assert report["tasks"] == {"succeeded": 4} and len(report["runs"]) == 4
    assert report["ingest"]["files"] == 14 and report["archive"]["audited"] == 6
    assert (tmp_path / "published/preprocess-run/ro-crate-metadata.json").is_file()


def test_a_raw_file_damaged_after_registration_is_caught_when_staged(tmp_path: Path) -> None:
    lab = demo.setup(tmp_path)
    demo.ingest(lab)
    scan = tmp_path / "tiers/pss/default/incoming/campaign-001/scan-005.npy"
    data = bytearray(scan.read_bytes())
    data[-1] ^= 0xFF  # bit rot on the platform tier
    scan.write_bytes(bytes(data))
    facts = demo.run_preprocessing(lab)
    assert facts["ok"] is False
    (task,) = lab.runs["preprocess"].tasks.values()
    assert task.reason == "staging_failed"
    assert "scan-005.npy" in (task.error or "") and "differs from the recorded" in (
        task.error or ""
    )
    with lab.data() as catalog:
        assert [d["name"] for d in catalog.catalog.datasets()] == ["raw-scans"]


def test_the_notebook_runs(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="dev dependency: pip install -e '.[dev]'")
    nbclient = pytest.importorskip("nbclient", reason="dev dependency: pip install -e '.[dev]'")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    assert "ok: True" in outputs
    assert "raw-scans@1 -> [" in outputs and "-> clean-scans@1" in outputs
    shown = [
        o
        for cell in notebook.cells
        for o in cell.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert any("urn:hexflow:" in o["data"]["text/html"] for o in shown)  # the version's table
