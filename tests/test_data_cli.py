"""``hexflow data ...`` and ``hexflow transfers`` in-process: good input, JSON output, and
bad input answered with exit 2 and a message that says what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hexflow.cli.main import app
from tests.data_helpers import S3_URL, fresh_bucket, s3_env, write_tree

LICENSE = "https://spdx.org/licenses/CC0-1.0"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    home = tmp_path / ".hexflow"
    home.mkdir()
    doc: dict[str, Any] = {
        "tiers": {"qss": "qss-dir", "pss": "pss-dir"},
        "quotas": {"tiny": {"qss": "1K"}},
        "lifecycle": [{"rule": "keep_last", "versions": 1, "tier": "qss"}],
    }
    if S3_URL:
        s3_env()
        doc["tiers"]["offplatform"] = {
            "url": f"s3://{fresh_bucket()}",
            "endpoint_url": S3_URL,
            "create_bucket": True,
        }
    (home / "storage.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, ["--home", str(home), *args])
        assert result.exit_code == code, (args, result.output, result.exception)
        if "--json" in args and code == 0:
            return json.loads(result.stdout)
        return result.output

    return run


def test_copy_add_show_search_lineage_export_usage(cli: Any, tmp_path: Path) -> None:
    write_tree(tmp_path / "run1", {"a.txt": b"alpha", "d/b.csv": b"x,y\n"})
    copied = cli("data", "cp", "run1", "qss:run1", "--json")
    assert copied["state"] == "succeeded" and copied["files_done"] == 2
    assert (tmp_path / ".hexflow/qss-dir/default/run1/d/b.csv").read_bytes() == b"x,y\n"
    listing = cli("data", "ls", "qss:run1", "--json")
    assert sorted(r["path"] for r in listing) == ["a.txt", "d/b.csv"]
    added = cli(
        "data",
        "add",
        "obs",
        "qss:run1",
        "-m",
        "title=Observations",
        "-m",
        "keywords=sea,ice",
        "-m",
        f"license={LICENSE}",
        "--json",
    )
    assert added["ref"] == "obs@1" and added["created"] is True
    assert cli("data", "add", "obs", "qss:run1", "--json")["created"] is False
    cli("data", "add", "derived", "run1/a.txt", "--input", "obs@1", "--run", "r1", "--task", "t")
    shown = cli("data", "show", "obs@1", "--json")
    assert shown["pid"].startswith("urn:hexflow:") and len(shown["files_list"]) == 2
    assert "Observations" in cli("data", "show", "obs")
    assert [v["ref"] for v in cli("data", "search", "ice", "--json")] == ["obs@1"]
    assert [v["ref"] for v in cli("data", "search", "--meta", "keywords=sea", "--json")] == [
        "obs@1"
    ]
    assert [d["name"] for d in cli("data", "ls", "--json")] == ["derived", "obs"]
    lineage = cli("data", "lineage", "obs@1", "--downstream", "--json")
    assert [(e["input"], e["output"]) for e in lineage["edges"]] == [("obs@1", "derived@1")]
    assert "obs@1 → [r1/t] → derived@1" in cli("data", "lineage", "derived@1")
    exported = cli("data", "export", "obs@1", "--ro-crate", str(tmp_path / "crate"), "--json")
    assert exported["valid"] and (tmp_path / "crate/ro-crate-metadata.json").exists()
    usage = {r["tier"]: r for r in cli("data", "usage", "--json")}
    assert usage["qss"]["used"] == 9 and usage["qss"]["files"] == 2
    transfers = cli("transfers", "--json")
    assert len(transfers) >= 2 and transfers[-1]["state"] == "succeeded"
    one = cli("transfers", copied["transfer_id"][:6], "--json")
    assert [i["state"] for i in one["items"]] == ["done", "done"]
    assert cli("data", "verify", "obs@1", "--json")["replicas"][0]["problems"] == []


def test_lifecycle_dry_run_then_apply(cli: Any, tmp_path: Path) -> None:
    for n in (1, 2):
        write_tree(tmp_path / f"v{n}", {"f": f"v{n}".encode()})
        cli("data", "cp", f"v{n}", f"pss:v{n}")
        cli("data", "add", "d", f"pss:v{n}")
        cli("data", "cp", f"pss:v{n}", f"qss:v{n}")
    # register the qss copies as replicas too: add from qss registers in place
    cli("data", "add", "d", "qss:v1")
    cli("data", "add", "d", "qss:v2")
    planned = cli("data", "lifecycle", "--dry-run", "--json")
    assert [(p["action"], p["ref"], p["from"], p["outcome"]) for p in planned] == [
        ("delete", "d@1", "qss", "planned")
    ]
    assert (tmp_path / ".hexflow/qss-dir/default/v1/f").exists()  # dry run: untouched
    done = cli("data", "lifecycle", "--json")
    assert [d["outcome"] for d in done] == ["done"]
    assert not (tmp_path / ".hexflow/qss-dir/default/v1/f").exists()
    assert (tmp_path / ".hexflow/pss-dir/default/v1/f").exists()
    assert cli("data", "lifecycle", "--dry-run", "--json") == []


@pytest.mark.skipif(not S3_URL, reason="needs the S3 server (HEXFLOW_TEST_S3_URL)")
def test_copy_to_the_s3_tier_and_back(cli: Any, tmp_path: Path) -> None:
    write_tree(tmp_path / "up", {"x.bin": b"x" * 10_000})
    cli("data", "cp", "up", "offplatform:up")
    assert [r["path"] for r in cli("data", "ls", "offplatform:up", "--json")] == ["x.bin"]
    cli("data", "cp", "offplatform:up/x.bin", "down/")
    assert (tmp_path / "down/x.bin").read_bytes() == b"x" * 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "cp", "nope:x", "qss:y"], "'nope' is not a configured tier"),
        (["data", "cp", "qss:missing", "pss:y"], "no such file or directory"),
        (["data", "cp", "qss:../x", "pss:y"], "must be relative"),
        (["data", "cp", "a", "b", "--workers", "0"], "--workers must be at least 1"),
        (["data", "show", "nothing@1"], "no version 'nothing@1'"),
        (["data", "show", "bad name"], "not a dataset reference"),
        (["data", "lineage", "x@"], "nothing after '@'"),
        (["data", "search"], "nothing to search for"),
        (["data", "search", "--meta", "oops"], "expected KEY=VALUE"),
        (["data", "add", "x", "missing-dir"], "no such file or directory"),
        (["data", "add", "x", "run1", "--run", "r"], "--run and --task go together"),
        (["data", "add", "x", "run1", "-m", "creators"], "expected KEY=VALUE"),
        (["data", "export", "x@1"], "--ro-crate DIR"),
        (["data", "usage", "--project", "bad name"], "--project"),
        (["transfers", "--resume"], "--resume needs a transfer id"),
        (["transfers", "ffff"], "no transfer 'ffff'"),
    ],
)
def test_bad_input_exits_2_and_says_what_to_fix(cli: Any, args: list[str], message: str) -> None:
    output = cli(*args, code=2)
    assert "error:" in output and message in output


def test_quota_refusal_exits_1(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 5000)
    output = cli("data", "cp", "big", "qss:big", "--project", "tiny", code=1)
    assert "quota on qss" in output and "hint:" in output


def test_bad_storage_settings_exit_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / ".hexflow/storage.yaml").write_text("tiers: {qss: {path: /a, url: s3://b}}\n")
    assert "exactly one of" in cli("data", "usage", code=2)
    (tmp_path / ".hexflow/storage.yaml").write_text("lifecycle: [{rule: nope}]\n")
    assert "unknown rule" in cli("data", "lifecycle", "--dry-run", code=2)
