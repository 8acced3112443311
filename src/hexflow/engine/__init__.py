"""Workflow lifecycle: turns executor events into checked, persisted transitions."""

from hexflow.engine.engine import Engine
from hexflow.engine.paths import RunPaths
from hexflow.engine.progress import Progress

__all__ = ["Engine", "Progress", "RunPaths"]
