"""The facility policy's inputs and outputs: pending and running tasks, config, decisions.

All frozen values. Requests are per node: ``Resources(cpus=4, nodes=2)`` asks for 4 cpus on
each of 2 distinct nodes. Fair-share usage is decayed by the caller with ``decay_usage``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hexflow.model import QoS, Resources
from hexflow.scheduler.cluster import Slot

# A request per node: (cpus, gpus, memory, nodes, exclusive). Tasks of one shape fail alike.
Shape = tuple[float, int, int, int, bool]


@dataclass(frozen=True, slots=True)
class PendingTask:
    """A queued request. ``walltime``: the user's estimate in seconds (required)."""

    task_id: str
    resources: Resources
    walltime: float
    qos: QoS = QoS.REGULAR
    project: str = ""
    submit_time: float = 0.0
    deadline: float | None = None
    best_effort: bool = False  # a deadline that cannot be met: run anyway, flagged at risk
    exclusive: bool = False
    gang: str | None = None
    shape: Shape = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.walltime > 0 and math.isfinite(self.walltime)):
            raise ValueError(f"task {self.task_id}: walltime must be positive, got {self.walltime}")
        if self.resources.cpus <= 0 and not self.exclusive:
            raise ValueError(f"task {self.task_id}: a shared-node task needs cpus > 0")
        r = self.resources
        shape = (r.cpus, r.gpus, r.memory, r.nodes, self.exclusive)
        object.__setattr__(self, "shape", shape)


@dataclass(frozen=True, slots=True)
class RunningTask:
    task_id: str
    slots: tuple[Slot, ...]
    started: float
    expected_end: float
    qos: QoS = QoS.REGULAR
    preemptible: bool = False

    @property
    def may_be_preempted(self) -> bool:
        return self.preemptible and self.qos is QoS.PREEMPT


Backfill = Literal["none", "easy", "conservative"]
_BACKFILL: dict[object, bool | str] = {
    False: False,
    "none": False,
    True: True,
    "easy": True,
    "conservative": "conservative",
}


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Which policies are on. ``preempt_grace``: seconds a victim gets to checkpoint.

    ``backfill``: ``"none"`` (or False: strict order, the pass stops at the first task that
    does not fit), ``"easy"`` (or True: the first such task gets a reservation) or
    ``"conservative"`` (each one does, up to ``reservation_depth`` per pass; None: all).
    Stored as False, True or "conservative"; ``backfill_mode`` names it.
    ``charge_in_pass``: charge each start's cpus x walltime to its project's usage within
    the pass, so projects of one class interleave instead of the lowest taking all.
    """

    fair_share: bool = True
    edf: bool = True
    admission: bool = True
    backfill: bool | str = True
    preemption: bool = True
    preempt_grace: float = 30.0
    reservation_depth: int | None = None
    charge_in_pass: bool = False

    def __post_init__(self) -> None:
        try:
            backfill = _BACKFILL[self.backfill]
        except (KeyError, TypeError):
            raise ValueError(
                f"backfill: expected 'none', 'easy' or 'conservative' (or False/True), got "
                f"{self.backfill!r}"
            ) from None
        object.__setattr__(self, "backfill", backfill)
        if self.reservation_depth is not None and self.reservation_depth < 1:
            raise ValueError(
                f"reservation_depth: expected None (no limit) or at least 1, got "
                f"{self.reservation_depth}"
            )
        if not self.preempt_grace >= 0:
            raise ValueError(f"preempt_grace: expected seconds >= 0, got {self.preempt_grace}")

    @property
    def backfill_mode(self) -> Backfill:
        if self.backfill == "conservative":
            return "conservative"
        return "easy" if self.backfill else "none"


@dataclass(frozen=True, slots=True)
class Start:
    task_id: str
    nodes: tuple[str, ...]
    at_risk: bool = False


@dataclass(frozen=True, slots=True)
class Preempt:
    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reserve:
    task_id: str
    nodes: tuple[str, ...]
    at: float
    at_risk: bool = False


@dataclass(frozen=True, slots=True)
class Reject:
    task_id: str
    reason: str


Decision = Start | Preempt | Reserve | Reject


def decay_usage(usage: Mapping[str, float], elapsed: float, half_life: float) -> dict[str, float]:
    """Usage after ``elapsed`` seconds of exponential decay with the given half-life."""
    if half_life <= 0:
        raise ValueError(f"half_life must be positive, got {half_life}")
    factor = 0.5 ** (max(elapsed, 0.0) / half_life)
    return {project: amount * factor for project, amount in usage.items()}


__all__ = [
    "Backfill",
    "Decision",
    "PendingTask",
    "PolicyConfig",
    "Preempt",
    "Reject",
    "Reserve",
    "RunningTask",
    "Shape",
    "Start",
    "decay_usage",
]
