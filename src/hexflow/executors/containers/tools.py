"""The one place the container package runs a runtime's helper command (inspect an image,
remove a container): an argument list, never a shell, with a bound on its time.

The task's own container command is run by the executor's command runner like any shell
task's command (its process group, logs, signals); what is here is short and synchronous.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The tool's own words about a failure: its last non-empty line of stderr."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.returncode}"


def run_tool(
    argv: Sequence[str],
    timeout: float = 60.0,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ToolResult:
    """Run ``argv`` to completion; a missing program is exit code 127, a timeout 124.
    ``env``: variables added to this process's environment for the tool (values that must
    not appear on its command line)."""
    try:
        done = subprocess.run(  # noqa: S603 - an argument list built by builders.py
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
        )
    except FileNotFoundError:
        return ToolResult(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return ToolResult(124, "", f"{argv[0]} did not answer within {timeout:g}s")
    except OSError as exc:
        return ToolResult(126, "", f"{argv[0]}: {exc.strerror or exc}")
    return ToolResult(done.returncode, done.stdout, done.stderr)
