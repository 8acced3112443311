"""Progress reports of a driven run, throttled, for progress bars and dashboards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hexflow.model import TaskState

S = TaskState

ProgressFn = Callable[["Progress"], None]


@dataclass(slots=True)
class Progress:
    run_id: str
    total: int
    counts: dict[str, int]
    elapsed: float

    @property
    def done(self) -> int:
        c = self.counts
        return sum(c.get(s.value, 0) for s in S if s.terminal)
