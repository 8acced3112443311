"""Provenance from the engine: tasks declare the datasets they read and write (Python
``inputs=``/``outputs=`` and YAML), inputs are staged to the tier tasks run against,
outputs registered after success, and the catalog records which task run made which
version from which input versions — shown by ``hexflow data lineage``. Failures (a
missing input, an output never written, a failed first attempt) are reported, not
registered."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import hexflow as hx
from hexflow.cli.main import app
from hexflow.data import DataServices, load_storage, open_data
from hexflow.flow.yamlspec import load_workflow_text
from hexflow.model.datasets import Dataset, task_datasets
from hexflow.settings import Settings


@pytest.fixture
def data(settings: Settings) -> Iterator[DataServices]:
    settings.home.mkdir(parents=True, exist_ok=True)
    with open_data(settings.db_url, load_storage(settings.home)) as services:
        yield services


def registered(data: DataServices, tmp_path: Path, name: str, files: dict[str, str]) -> str:
    src = tmp_path / f"src-{name}"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    version, _ = data.catalog.add(name, str(src), tier="pss", metadata={"title": name})
    return version.ref


@hx.task(inputs=["raw"], outputs=[hx.Dataset("clean", metadata={"keywords": ["clean"]})])
def clean() -> int:
    rows = [r for r in (hx.input_path("raw") / "a.csv").read_text().splitlines() if r]
    (hx.output_path("clean") / "clean.csv").write_text("\n".join(sorted(rows)) + "\n")
    return len(rows)


@hx.task(inputs=["clean", "raw@1"], outputs=["stats"])
def stats(n: int) -> str:
    clean_dir = os.environ["HEXFLOW_INPUT_CLEAN"]
    (hx.output_path("stats") / "n.txt").write_text(f"{n}\n")
    return clean_dir


@hx.task(inputs=["raw"])
def just_reads() -> list[str]:
    return sorted(p.name for p in hx.input_path("raw").iterdir())


def test_a_run_stages_inputs_registers_outputs_and_records_lineage(
    settings: Settings, data: DataServices, tmp_path: Path
) -> None:
    raw = registered(data, tmp_path, "raw", {"a.csv": "3\n1\n2\n"})
    with hx.Workflow("prov", settings=settings) as wf:
        n = clean()
        s = stats(n)
        r = just_reads()
    run = wf.run()
    assert run.ok, {t: (r.state, r.error) for t, r in run.tasks.items()}
    cat = data.catalog
    c1, s1 = cat.resolve("clean@1"), cat.resolve("stats@1")
    assert cat.files(c1)[0].path == "clean.csv" and c1.metadata["keywords"] == ["clean"]
    assert f"run {run.id}" in c1.metadata["description"]
    # the input was staged to qss (the tier tasks run against) and recorded as a replica
    qss = Path(data.transfers.storage.tier("qss").root)
    assert {x.tier for x in cat.replicas(cat.resolve(raw))} == {"pss", "qss"}
    staged = [x for x in cat.replicas(cat.resolve(raw)) if x.tier == "qss"][0]
    assert (qss / "default" / staged.location / "a.csv").read_text() == "3\n1\n2\n"
    # outputs are where the task wrote them: qss:runs/<run>/<task>/<name>
    (replica,) = cat.replicas(s1)
    assert (replica.tier, replica.location) == ("qss", f"runs/{run.id}/stats-1/stats")
    assert s.result() == str(qss / "default" / f"runs/{run.id}/clean-1/clean")
    assert r.result() == ["a.csv"]

    up = {(e.run_id, e.task_id, e.input, e.output, e.depth) for e in cat.lineage("stats@1")}
    assert up == {
        (run.id, "stats-1", "clean@1", "stats@1", 1),
        (run.id, "stats-1", "raw@1", "stats@1", 1),
        (run.id, "clean-1", "raw@1", "clean@1", 2),
    }
    down = {(e.task_id, e.output) for e in cat.lineage(raw, "downstream")}
    assert down >= {("clean-1", "clean@1"), ("stats-1", "stats@1"), ("just_reads-1", None)}

    out = CliRunner().invoke(app, ["--home", str(settings.home), "data", "lineage", "stats@1"])
    assert out.exit_code == 0, out.output
    assert f"clean@1 → [{run.id}/stats-1] → stats@1" in out.output
    assert f"  raw@1 → [{run.id}/clean-1] → clean@1" in out.output


def test_the_same_output_again_is_the_same_version_with_a_second_producer(
    settings: Settings, data: DataServices, tmp_path: Path
) -> None:
    registered(data, tmp_path, "raw", {"a.csv": "1\n"})
    runs = []
    for _ in range(2):
        with hx.Workflow("twice", settings=settings) as wf:
            clean()
        runs.append(wf.run())
    assert all(r.ok for r in runs)
    assert [v.number for v in data.catalog.versions("clean")] == [1]
    producers = data.db.catalog.producers(data.catalog.resolve("clean@1"))
    assert sorted(run for run, _ in producers) == sorted(r.id for r in runs)


def test_a_pinned_input_stays_pinned_and_latest_follows(
    settings: Settings, data: DataServices, tmp_path: Path
) -> None:
    registered(data, tmp_path, "raw", {"a.csv": "1\n"})
    registered(data, tmp_path, "raw", {"a.csv": "2\n"})  # raw@2 is the latest now
    wf = load_workflow_text(
        """
name: pinned
tasks:
  old:
    command: 'cp "$HEXFLOW_INPUT_RAW/a.csv" "$HEXFLOW_OUTPUT_OLD/"'
    shell: true
    inputs: [raw@1]
    outputs: [old]
  new:
    command: 'cp "$HEXFLOW_INPUT_RAW/a.csv" "$HEXFLOW_OUTPUT_NEW/"'
    shell: true
    inputs: [raw]
    outputs: [{name: new, metadata: {title: From the latest}}]
""",
        workdir=tmp_path,
    )
    run = wf.run(settings=settings)
    assert run.ok, {t: (r.state, r.error) for t, r in run.tasks.items()}
    cat = data.catalog
    assert [(e.input, e.output) for e in cat.lineage("old@1")] == [("raw@1", "old@1")]
    assert [(e.input, e.output) for e in cat.lineage("new@1")] == [("raw@2", "new@1")]
    assert cat.resolve("new@1").title == "From the latest"
    (replica,) = cat.replicas(cat.resolve("old@1"))
    assert (
        Path(data.transfers.storage.tier("qss").root) / "default" / replica.location / "a.csv"
    ).read_text() == "1\n"


@hx.task(outputs=["never"])
def writes_nothing() -> None:
    hx.output_path("never")


@hx.task()
def after_it() -> None:
    pass


@hx.task(inputs=["no-such-dataset"])
def reads_missing() -> None:
    pass


def test_a_missing_input_or_an_unwritten_output_fails_the_task_and_says_why(
    settings: Settings, data: DataServices
) -> None:
    with hx.Workflow("bad", settings=settings) as wf:
        w = writes_nothing()
        after_it.with_options(after=[w])()
        reads_missing()
    run = wf.run()
    tasks = run.tasks
    assert not run.ok
    assert tasks["writes_nothing-1"].reason == "outputs_failed"
    assert "wrote no file" in (tasks["writes_nothing-1"].error or "")
    assert "HEXFLOW_OUTPUT_NEVER" in (tasks["writes_nothing-1"].error or "")
    assert tasks["after_it-1"].state.value == "upstream_failed"
    assert tasks["reads_missing-1"].reason == "staging_failed"
    assert "no dataset 'no-such-dataset'" in (tasks["reads_missing-1"].error or "")
    assert data.catalog.datasets() == []


@hx.task(outputs=["flaky"], retries=1, backoff=0)
def flaky() -> None:
    out = hx.output_path("flaky")
    assert not list(out.iterdir()), "a retry starts with an empty output directory"
    (out / "part.txt").write_text("partial")
    if os.environ["HEXFLOW_ATTEMPT"] == "1":
        raise RuntimeError("first attempt fails after writing")
    (out / "part.txt").write_text("complete")


def test_a_retry_registers_only_what_the_successful_attempt_wrote(
    settings: Settings, data: DataServices
) -> None:
    with hx.Workflow("retry", settings=settings) as wf:
        flaky()
    run = wf.run()
    assert run.ok and run.tasks["flaky-1"].attempt == 2
    version = data.catalog.resolve("flaky@1")
    (replica,) = data.catalog.replicas(version)
    qss = Path(data.transfers.storage.tier("qss").root)
    assert (qss / "default" / replica.location / "part.txt").read_text() == "complete"


def test_declarations_are_checked_where_they_are_written() -> None:
    reads, writes = task_datasets(
        "t", ["raw@3", Dataset("cal", tier="pss")], [{"name": "out", "metadata": {"title": "T"}}]
    )
    assert [d.ref for d in reads] == ["raw@3", "cal"] and writes[0].metadata == {"title": "T"}
    assert reads[0].env_name == "RAW" and Dataset("sea-ice.v2").env_name == "SEA_ICE_V2"
    for inputs, outputs, message in [
        (["raw"], ["clean@2"], "cannot name one"),
        (["bad name"], [], "not valid"),
        ("raw", [], "take lists"),
        (["sea-ice", "sea_ice"], [], "would share HEXFLOW_INPUT_SEA_ICE"),
        ([{"name": "x", "metadata": {"title": "t"}}], [], "metadata belongs to outputs"),
        ([{"name": "x", "colour": "red"}], [], "is not a dataset"),
        ([{"name": "x", "tier": "Not A Tier"}], [], "not a tier name"),
    ]:
        with pytest.raises(hx.SpecError, match=message):
            task_datasets("t", inputs, outputs)
    with pytest.raises(hx.SpecError, match="take lists"):
        hx.task(inputs="raw")(lambda: None)
    with pytest.raises(hx.SpecError, match="unknown task option 'input'"):
        hx.task(input=["raw"])(lambda: None)


def test_input_and_output_paths_outside_a_declaring_task_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HEXFLOW_DATASETS", raising=False)
    with pytest.raises(hx.HexflowError, match="no input dataset 'raw'") as info:
        hx.input_path("raw")
    assert "inputs=['raw']" in (info.value.hint or "")
    env: dict[str, Any] = {"inputs": {"raw": {"path": str(tmp_path)}}, "outputs": {}}
    monkeypatch.setenv("HEXFLOW_DATASETS", json.dumps(env))
    assert hx.input_path("raw") == tmp_path
    with pytest.raises(hx.HexflowError, match="its outputs: none"):
        hx.output_path("clean")
