"""Archetype 6 (event-triggered, API-driven): the shower simulation and its reduction, the
results database, the experiment's command line with bad input, the demo's summary table,
and demo 6 end to end through ``hexflow demo 6 --json`` — a real server on loopback, signed
webhooks from another process, functions that submit jobs and react to their completion."""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hexflow_examples.archetype6_event_api import experiment, functions, results, shower
from hexflow_examples.registry import DEMOS
from rich.console import Console

from hexflow.cli import main as cli_main


def test_demo_6_is_registered() -> None:
    assert 6 in DEMOS and "webhooks" in DEMOS[6].title


@pytest.mark.parametrize("energy", [1.0, 40.0, 600.0, 1e5])
def test_the_reduced_shower_maximum_is_where_theory_puts_it(energy: float) -> None:
    reduced = shower.reduce(shower.simulate(energy, seed=7))
    assert abs(reduced["t_max"] - math.log(energy / shower.CRITICAL_ENERGY)) < 0.5
    assert reduced["n_max"] > 0 and reduced["particles"] > reduced["n_max"]
    assert shower.simulate(energy, seed=7) == shower.simulate(energy, seed=7)  # seeded


@pytest.mark.parametrize("energy", [0.1, 0.0, -5.0, float("nan"), float("inf"), True, "50"])
def test_energies_that_cannot_shower_are_refused(energy: object) -> None:
    with pytest.raises(ValueError, match="energy"):
        shower.check_energy(energy)


def test_the_shower_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile, summary = tmp_path / "p.json", tmp_path / "s.json"
    assert shower.main(["simulate", "--energy", "150", "--shot", "1", "--out", str(profile)]) == 0
    assert shower.main(["reduce", "--profile", str(profile), "--out", str(summary)]) == 0
    assert json.loads(summary.read_text())["energy"] == 150.0
    assert shower.main(["simulate", "--energy", "0.01", "--shot", "1", "--out", str(profile)]) == 2
    assert "critical energy" in capsys.readouterr().err
    assert shower.main(["reduce", "--profile", str(tmp_path / "none"), "--out", str(summary)]) == 2
    (tmp_path / "short.json").write_text(json.dumps({"depth": [1, 2], "particles": [1, 2]}))
    assert shower.main(["reduce", "--profile", str(tmp_path / "short.json"), "--out", "x"]) == 2
    with pytest.raises(SystemExit):
        shower.main(["simulate", "--energy", "lots", "--shot", "1", "--out", str(profile)])


def test_the_job_and_the_results_database(tmp_path: Path) -> None:
    doc = functions.simulation_job(3, 150.0, str(tmp_path))
    assert doc["tasks"]["reduce"]["after"] == "simulate"
    assert str(tmp_path / "shot-0003.profile.json") in doc["tasks"]["simulate"]["command"]
    db = str(tmp_path / "r.db")
    results.record_shot(db, 3, 150.0, "inv1", 1.0)
    results.record_shot(db, 3, 150.0, "inv2", 2.0)  # a function run again: the same row
    row = {"shot": 3, "run_id": "r1", "run_state": "succeeded", "t_max": 7.4, "event_seq": 9,
           "event_at": 5.0}  # fmt: skip
    results.record_result(db, row, 6.0)
    results.record_result(db, row, 7.0)
    got = results.read(db)
    assert [(s["shot"], s["invocation"]) for s in got["shots"]] == [(3, "inv2")]
    assert [(r["shot"], r["t_max"], r["written_at"]) for r in got["results"]] == [(3, 7.4, 7.0)]


def test_the_experiment_refuses_bad_input(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("whs_x\n")
    secret.chmod(0o600)
    url = "http://127.0.0.1:9/api/v1/hooks/abc"
    out = str(tmp_path / "sent.json")
    for argv in (
        ["--url", "ftp://x/api/v1/hooks/a", "--secret-file", str(secret), "--out", out],
        ["--url", "http://127.0.0.1:9/api/v1/runs", "--secret-file", str(secret), "--out", out],
        ["--url", url, "--secret-file", str(tmp_path / "missing"), "--out", out],
        ["--url", url, "--secret-file", str(secret), "--energies", "a,b", "--out", out],
        ["--url", url, "--secret-file", str(secret), "--energies", ",", "--out", out],
        ["--url", url, "--secret-file", str(secret), "--interval", "-1", "--out", out],
        ["--secret-file", str(secret), "--out", out],
    ):
        with pytest.raises(SystemExit) as exited:
            experiment.main(argv)
        assert exited.value.code == 2, argv
    secret.chmod(0o644)  # others may read the secret: refused
    with pytest.raises(SystemExit):
        experiment.main(["--url", url, "--secret-file", str(secret), "--out", out])
    secret.chmod(0o600)
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(SystemExit):
        experiment.main(["--url", url, "--secret-file", str(empty), "--out", out])
    # a server that is not there: exit 3, nothing written
    assert experiment.main(["--url", url, "--secret-file", str(secret), "--out", out]) == 3
    assert not Path(out).exists()


def test_a_demo_report_prints_its_summary_table(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(file=io.StringIO(), width=160, record=True)
    monkeypatch.setattr(cli_main, "out", console)
    report = {
        "ok": True,
        "demo": 6,
        "table": {"title": "shots", "columns": ["shot", "state"], "rows": [[1, "succeeded"]]},
    }
    cli_main.print_demo_report(report)
    text = console.export_text()
    assert "shots" in text and "shot" in text and "succeeded" in text and "ok" in text
    assert "'table'" not in text  # the table is shown as a table, not in the figures
    cli_main.print_demo_report({"ok": False, "table": "not a table"})
    assert "FAILED" in console.export_text()


@pytest.mark.timeout(240)
def test_demo_6_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HEXFLOW_DB", "HEXFLOW_SITES")}
    done = subprocess.run(
        [sys.executable, "-m", "hexflow.cli.main", "demo", "6", "--json", "--workdir",
         str(tmp_path)],
        capture_output=True, text=True, timeout=230, env=env,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], json.dumps(report, indent=2)[-4000:]
    assert report["demo"] == 6 and report["shots"] == 4 and report["bad_shots"] == 1
    assert all(report["checks"].values())
    assert report["tasks"] == {"succeeded": 8}
    assert report["invocations"] == {
        "on_shot:succeeded": 4,
        "on_shot:failed": 1,
        "postprocess:succeeded": 4,
    }
    assert [row[0] for row in report["table"]["rows"]] == [1, 2, 3, 4, 900]
    with sqlite3.connect(report["results_database"]) as con:
        rows = con.execute(
            "SELECT shot, run_state, deviation FROM results ORDER BY shot"
        ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert all(state == "succeeded" and abs(dev) < 0.5 for _, state, dev in rows)
    assert sorted(report["runs"]) == sorted(r[4] for r in report["table"]["rows"][:4])
