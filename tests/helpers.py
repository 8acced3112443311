"""Helpers the process-level tests share: bounded waits, process liveness, the real CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil


def wait_for(
    cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.02
) -> Any:
    """Poll ``cond`` until it is truthy (and return it), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def live(pid: int) -> bool:
    """True while ``pid`` is a running process (a zombie has finished running)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run_cli(
    cwd: Path, env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``hexflow ARGS`` as a real subprocess of this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "hexflow.cli.main", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
