"""Where a run keeps its files: ``<hexflow home>/runs/<run_id>/{logs,checkpoints}``."""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(task_id: str) -> str:
    return _UNSAFE.sub("_", task_id)


class RunPaths:
    def __init__(self, home: str | Path, run_id: str) -> None:
        self.root = Path(home) / "runs" / run_id
        self.logs = self.root / "logs"
        self.checkpoints = self.root / "checkpoints"
        self._log_prefix = os.path.join(self.logs, "")

    def create(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

    def log(self, task_id: str, attempt: int, stream: str) -> Path:
        return self.logs / f"{safe_name(task_id)}.{attempt}.{stream}"

    def log_files(self, task_id: str, attempt: int) -> tuple[str, str]:
        """``str(log(...))`` of stdout and stderr, built without pathlib (every launch)."""
        base = f"{self._log_prefix}{safe_name(task_id)}.{attempt}."
        return base + "out", base + "err"

    def checkpoint(self, task_id: str) -> Path:
        return self.checkpoints / safe_name(task_id)


def run_home(workdir: str, config: dict[str, object]) -> Path:
    """The hexflow home a run was created with (its config), else ``<workdir>/.hexflow``."""
    home = config.get("home")
    return Path(str(home)) if home else Path(workdir) / ".hexflow"
