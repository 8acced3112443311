"""The examples of docs/events.md, docs/functions.md and docs/archetype6.md run, against a
real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote_env import Live, admin, live_server

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
BLOCKS = [
    (page, i, m.group(1))
    for page in ("events.md", "functions.md", "archetype6.md")
    for i, m in enumerate(BLOCK.finditer((DOCS / page).read_text()))
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("events-docs")
    for server in live_server(tmp):
        server.tokens["alice"] = admin(
            tmp, server.cli_env, "token", "create", "--user", "alice", "--project", "p1",
            "--scopes", "read,submit,invoke", "--json",
        )["token"]  # fmt: skip
        yield server


def test_the_pages_have_examples() -> None:
    assert {page for page, *_ in BLOCKS} == {"events.md", "functions.md", "archetype6.md"}


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=lambda v: str(v)[:16])
def test_doc_block_runs(live: Live, tmp_path: Path, page: str, index: int, code: str) -> None:
    script = tmp_path / f"block{index}.py"
    script.write_text(code)
    env = {**os.environ, "HX": live.url, "TOKEN": live.tokens["alice"]}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"{page} block {index} failed:\n{done.stderr[-3000:]}"
