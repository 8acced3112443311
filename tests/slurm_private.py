"""A Slurm cluster of the test session's own, for tests that take its node down or fill it.

The shared cluster (``slurm_env``) serves every test run on this machine at once: setting
its only node DOWN would fail other runs' jobs. ``private_slurm`` starts a second
single-node cluster with scripts/ci/slurm-up.sh (its own ports, configuration, state and
``ClusterName=sites``; 16 CPUs, no GPUs) and hands its ``slurm.conf``: hexflow reaches it
as another site would be reached, through ``SLURM_CONF``. It needs root (as CI has); with
``HEXFLOW_TEST_SLURM=1`` a cluster that does not start fails the tests, else they skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm_env import REQUIRED

ROOT = Path(__file__).resolve().parent.parent
BASE = Path(os.environ.get("HEXFLOW_TEST_SLURM_SITES", "/tmp/hexflow-slurm-sites"))
CONF = BASE / "etc" / "slurm.conf"
ENV = {
    "SLURM_RUN_DIR": str(BASE / "run"),
    "SLURM_CONF_DIR": str(BASE / "etc"),
    "SLURM_CTLD_PORT": "6837",
    "SLURM_D_PORT": "6838",
    "SLURM_CLUSTER": "sites",
    "SLURM_GPUS": "0",
    "SLURM_CPUS": "16",
    "SLURM_SMOKE": "0",
}


def _skip_or_fail(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"HEXFLOW_TEST_SLURM=1 but the private Slurm cluster did not start: {why}")
    pytest.skip(f"no private Slurm cluster: {why} (run as root with Slurm installed)")


@pytest.fixture(scope="session")
def private_slurm() -> Iterator[str]:
    """The path of the private cluster's slurm.conf, once it answers."""
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        _skip_or_fail("Slurm is not installed (scripts/ci/slurm-up.sh installs it)")
    if os.geteuid() != 0:
        _skip_or_fail("starting slurmctld needs root")
    env = {**os.environ, **ENV, "SLURM_USER_PID": str(os.getpid())}
    up = subprocess.run(
        ["bash", str(ROOT / "scripts/ci/slurm-up.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if up.returncode != 0:
        _skip_or_fail(f"slurm-up.sh failed: {(up.stderr or up.stdout)[-800:]}")
    try:
        yield str(CONF)
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts/ci/slurm-down.sh")],
            env=env,
            capture_output=True,
            timeout=120,
        )


def scontrol(conf: str, *args: str) -> str:
    out = subprocess.run(
        ["scontrol", *args],
        env={**os.environ, "SLURM_CONF": conf},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout


def node_state(conf: str) -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-n", "localhost", "-o", "%t"],
        env={**os.environ, "SLURM_CONF": conf},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip()


def resume_node(conf: str, timeout: float = 60.0) -> None:
    """Bring the node back up (after a test set it DOWN), and wait until it takes jobs."""
    import time

    if any(s in node_state(conf) for s in ("down", "drain", "fail")):
        scontrol(conf, "update", "NodeName=localhost", "State=RESUME")
    deadline = time.monotonic() + timeout
    while node_state(conf) not in ("idle", "mix", "alloc"):  # "idle*": not responding yet
        assert time.monotonic() < deadline, f"node still {node_state(conf)!r} after {timeout}s"
        time.sleep(0.2)
