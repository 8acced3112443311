"""Shared fixtures: an isolated hexflow home per test, so tests never share state."""

from __future__ import annotations

from pathlib import Path

import pytest

from hexflow.settings import Settings


@pytest.fixture
def hx_env(tmp_path: Path) -> dict[str, str]:
    return {"HEXFLOW_HOME": str(tmp_path / ".hexflow"), "HEXFLOW_KILL_GRACE": "0.5"}


@pytest.fixture
def settings(tmp_path: Path, hx_env: dict[str, str]) -> Settings:
    return Settings.from_env(env=hx_env, cwd=tmp_path)
