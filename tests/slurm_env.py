"""Whether a real Slurm is here for the tests that need one, and a fixture that says so.

``scripts/test.sh`` starts a single-node Slurm when run as root (as CI is) and sets
``HEXFLOW_TEST_SLURM=1``: then a missing or broken Slurm fails those tests instead of
skipping them. Without it they run if a Slurm answers (``sinfo``), and skip otherwise.
"""

from __future__ import annotations

import functools
import os

import pytest

from hexflow.executors.slurm.commands import SlurmCommandError, SlurmCommands

REQUIRED = os.environ.get("HEXFLOW_TEST_SLURM") == "1"
SKIP_REASON = (
    "no Slurm here: `bash scripts/test.sh` as root starts one (scripts/ci/slurm-up.sh), "
    "or run `bash scripts/ci/slurm-up.sh` as root first"
)


@functools.cache
def slurm_problem() -> str | None:
    """None when Slurm answers; else why not."""
    commands = SlurmCommands(timeout=10)
    if not commands.available():
        return "sbatch is not installed"
    try:
        parts = commands.sinfo()
    except SlurmCommandError as exc:
        return f"sinfo failed: {exc}"
    if not any(p.available for p in parts):
        return f"no partition is up: {parts}"
    return None


@pytest.fixture
def slurm() -> None:
    problem = slurm_problem()
    if problem is None:
        return
    if REQUIRED:
        pytest.fail(f"HEXFLOW_TEST_SLURM=1 but Slurm does not answer: {problem}")
    pytest.skip(f"{SKIP_REASON} ({problem})")
