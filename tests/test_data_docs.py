"""docs/data.md runs: its ```bash blocks (the hexflow commands, in order) and its ```python
blocks, in a fresh directory with its own hexflow home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "data.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(), re.S)


@pytest.mark.slow
def test_the_bash_and_python_examples_of_docs_data_run(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HEXFLOW_HOME": str(tmp_path / ".hexflow"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("HEXFLOW_DB", None)
    env.pop("HEXFLOW_STORAGE", None)
    for i, script in enumerate(_blocks("bash")):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"bash block {i} failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "crate" / "ro-crate-metadata.json").exists()
    for i, code in enumerate(_blocks("python")):
        (tmp_path / f"block{i}.py").write_text(code)
        done = subprocess.run(
            [sys.executable, f"block{i}.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"python block {i} failed:\n{done.stderr[-3000:]}"
    assert (tmp_path / "readings-crate" / "ro-crate-metadata.json").exists()


def test_the_settings_example_of_docs_data_parses() -> None:
    import yaml

    from hexflow.data.lifecycle import parse_rules
    from hexflow.data.tiers import parse_storage

    doc = yaml.safe_load(_blocks("yaml")[0])
    cfg = parse_storage(doc, home="/h")
    assert cfg.tier("offplatform").kind == "s3" and cfg.tier("pss", "alcf").root == "/eagle/hexflow"
    assert len(parse_rules(cfg.lifecycle, [t.name for t in cfg.local_tiers()])) == 3
