"""Workflow lifecycle: turns executor events into checked, persisted transitions."""

from hexflow.engine.engine import Engine, Progress
from hexflow.engine.paths import RunPaths

__all__ = ["Engine", "Progress", "RunPaths"]
