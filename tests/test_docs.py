"""The examples in docs/ run: every ```python block of the guides, in a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in ("python.md", "qos.md", "sites.md"):
        for i, match in enumerate(BLOCK.finditer((DOCS / page).read_text())):
            found.append((page, i, match.group(1)))
    return found


@pytest.mark.parametrize(("page", "index", "code"), _blocks(), ids=lambda v: str(v)[:20])
def test_doc_block_runs(
    tmp_path: Path, hx_env: dict[str, str], page: str, index: int, code: str
) -> None:
    script = tmp_path / f"block{index}.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, **hx_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{page} block {index} failed:\n{done.stderr[-3000:]}"
