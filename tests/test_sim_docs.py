"""The examples of docs/simulator.md run: its console commands, its plan file, its Python."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hexflow.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "simulator.md").read_text()


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", PAGE, re.S)


def test_the_page_has_examples() -> None:
    assert len(_blocks("console")) >= 1 and _blocks("yaml") and _blocks("python")


def test_console_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "data").symlink_to(ROOT / "benchmarks" / "data")
    for block in _blocks("yaml"):
        name = block.splitlines()[0].removeprefix("#").strip()
        (tmp_path / name).write_text(block)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    commands = [
        line.removeprefix("$ ")
        for block in _blocks("console")
        for line in block.splitlines()
        if line.startswith("$ hexflow ")
    ]
    assert len(commands) >= 5
    for command in commands:
        done = runner.invoke(app, shlex.split(command)[1:])
        assert done.exit_code == 0, f"{command}\n{done.output}"
    assert (tmp_path / "jobs.csv").read_text().startswith("id,submit,start,end,procs")


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for index, code in enumerate(_blocks("python")):
        exec(compile(code, f"simulator.md python block {index}", "exec"), {})
