"""A whole run exported as a Workflow Run / Provenance Run RO-Crate (``hexflow data
export-run``): the crate is read back with the rocrate library and checked against what
the profiles require, its structure says which task made which version from which, and
the checker catches a crate that breaks the profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

import hexflow as hx
from hexflow.cli.main import app
from hexflow.data import load_storage, open_data
from hexflow.data.runcrate import PROFILES, check_run_crate
from hexflow.settings import Settings
from tests.test_data_provenance import clean, stats

LICENSE = "https://spdx.org/licenses/CC0-1.0"


@hx.task()
def plain(n: int) -> int:
    return n + 1


def _run_with_data(settings: Settings, tmp_path: Path) -> str:
    settings.home.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "raw"
    src.mkdir()
    (src / "a.csv").write_text("2\n1\n")
    with open_data(settings.db_url, load_storage(settings.home)) as data:
        data.catalog.add("raw", str(src), metadata={"title": "Raw"})
    with hx.Workflow("crated", settings=settings) as wf:
        n = clean()
        stats(n)
        plain(n)
    run = wf.run()
    assert run.ok
    return run.id


def _export(settings: Settings, run_id: str, out: Path, *extra: str) -> dict[str, Any]:
    args = ["--home", str(settings.home), "data", "export-run", run_id[:8], "--ro-crate"]
    result = CliRunner().invoke(app, [*args, str(out), "--license", LICENSE, "--json", *extra])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _graph(crate: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((crate / "ro-crate-metadata.json").read_text())
    return {e["@id"]: e for e in doc["@graph"]}


def ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [i["@id"] for i in items]


def test_a_run_exports_as_a_valid_provenance_run_crate(settings: Settings, tmp_path: Path) -> None:
    run_id = _run_with_data(settings, tmp_path)
    crate = tmp_path / "crate"
    report = _export(settings, run_id, crate)
    assert report["valid"] and report["problems"] == []
    assert report["versions_made"] == ["clean@1", "stats@1"] and report["versions_used"] == [
        "raw@1"
    ]
    assert check_run_crate(crate) == []
    g = _graph(crate)
    root = g["./"]
    assert set(ids(root["conformsTo"])) == set(PROFILES)
    assert ids(root["mainEntity"]) == ["workflow.json"]
    workflow = json.loads((crate / "workflow.json").read_text())
    assert [t["id"] for t in workflow["tasks"]] == ["clean-1", "stats-1", "plain-1"]
    assert workflow["tasks"][1]["inputs"] == ["clean", "raw@1"]

    (run_action,) = [g[i] for i in ids(root["mentions"])]
    assert ids(run_action["instrument"]) == ["workflow.json"]
    raw = [e for e in g.values() if e.get("name") == "raw@1"][0]
    assert ids(run_action["object"]) == [raw["@id"]] and raw["@id"].startswith("urn:hexflow:")
    assert ids(run_action["result"]) == ["stats-v1/"]  # made and used by no task of the run
    assert run_action["actionStatus"]["@id"].endswith("CompletedActionStatus")

    task = g[f"#task-{run_id}-stats-1"]
    assert ids(task["instrument"]) == ["workflow.json#stats-1"]
    assert set(ids(task["object"])) == {"clean-v1/", raw["@id"]}
    assert ids(task["result"]) == ["stats-v1/"]
    assert "object" not in g[f"#task-{run_id}-plain-1"]  # read no dataset
    control = g[f"#control-{run_id}-stats-1"]
    assert ids(control["object"]) == [task["@id"]]
    assert ids(control["instrument"]) == ["workflow.json#step/stats-1"]
    (engine,) = [e for e in g.values() if e["@type"] == "OrganizeAction"]
    assert ids(engine["result"]) == [run_action["@id"]] and len(ids(engine["object"])) == 3

    assert (crate / "clean-v1/clean.csv").read_text() == "1\n2\n"
    assert g["clean-v1/clean.csv"]["identifier"].startswith(("blake3:", "sha256:"))
    assert g["clean-v1/"]["identifier"].startswith("urn:hexflow:")


def test_without_data_the_versions_are_referred_to_by_pid(
    settings: Settings, tmp_path: Path
) -> None:
    run_id = _run_with_data(settings, tmp_path)
    crate = tmp_path / "light"
    assert _export(settings, run_id, crate, "--no-data")["valid"]
    assert sorted(p.name for p in crate.iterdir()) == ["ro-crate-metadata.json", "workflow.json"]
    g = _graph(crate)
    made = [e for e in g.values() if e.get("name") in ("clean@1", "stats@1")]
    assert len(made) == 2 and all(e["@id"].startswith("urn:hexflow:") for e in made)


def test_the_checker_finds_what_breaks_the_profiles(settings: Settings, tmp_path: Path) -> None:
    run_id = _run_with_data(settings, tmp_path)
    crate = tmp_path / "crate"
    _export(settings, run_id, crate)
    meta = crate / "ro-crate-metadata.json"
    doc = json.loads(meta.read_text())
    for entity in doc["@graph"]:
        if entity["@id"] == "./":
            entity["conformsTo"] = entity["conformsTo"][:1]
            entity["mentions"] = []
        if entity["@id"] == f"#control-{run_id}-clean-1":
            entity["instrument"] = {"@id": "#nowhere"}
        if entity["@id"] == "workflow.json":
            entity["@type"] = ["File", "SoftwareSourceCode"]
    meta.write_text(json.dumps(doc))
    (crate / "stats-v1/n.txt").write_text("tampered")
    problems = "\n".join(check_run_crate(crate))
    assert "does not conform to Provenance Run Crate" in problems
    assert "no CreateAction of the workflow is in the root's mentions" in problems
    assert "names #nowhere, not in the crate" in problems
    assert "lack ['ComputationalWorkflow', 'HowTo']" in problems
    assert "stats-v1/n.txt" in problems  # the file no longer matches its digest


def test_export_run_refuses_what_it_cannot_do(settings: Settings, tmp_path: Path) -> None:
    run_id = _run_with_data(settings, tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    runner = CliRunner()
    home = ["--home", str(settings.home), "data", "export-run"]
    result = runner.invoke(app, [*home, run_id, "--ro-crate", str(tmp_path / "full")])
    assert result.exit_code == 2 and "not empty" in result.output
    result = runner.invoke(app, [*home, run_id])
    assert result.exit_code == 2 and "--ro-crate DIR" in result.output
    result = runner.invoke(app, [*home, "nosuchrun", "--ro-crate", str(tmp_path / "c")])
    assert result.exit_code != 0 and "nosuchrun" in result.output
