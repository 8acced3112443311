"""How many pilots: the elastic rule, pure (Parsl's blocks, Balsam's elastic queue).

Given the queued tasks and the pilots there are, ``scale`` says how many new pilots to ask
for and which pending ones (not started yet) to withdraw. Rules:

- supply is the free cpus of active pilots that still have time for the shortest queued
  task, plus every pending pilot's cpus; new pilots cover what the queue needs beyond it,
  one pilot per ``cpus`` of need, never more than ``max_pilots`` useful at once (a pilot
  too close to its end for any queued task is leaving and does not count);
- at least ``min_pilots`` stay live, busy or not;
- with nothing queued, pending pilots beyond ``min_pilots`` are withdrawn; active pilots
  leave on their own after ``idle_timeout`` without work (the agent's rule), so the
  allocation shrinks with the backlog.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PilotView:
    name: str
    state: str  # pending (asked for, not started) | active | draining (leaving)
    cpus: float
    free_cpus: float = 0.0
    remaining: float = math.inf  # seconds it may still take work for


@dataclass(frozen=True, slots=True)
class Scale:
    submit: int = 0
    withdraw: tuple[str, ...] = field(default_factory=tuple)


def scale(
    queued_cpus: Sequence[tuple[float, float]],
    pilots: Sequence[PilotView],
    *,
    cpus: float,
    min_pilots: int,
    max_pilots: int,
) -> Scale:
    """``queued_cpus``: (cpus, seconds needed) of each task waiting in the channel."""
    live = [p for p in pilots if p.state in ("pending", "active")]
    pending = [p for p in live if p.state == "pending"]
    demand = sum(c for c, _ in queued_cpus)
    if not queued_cpus:
        keep = max(0, min_pilots - (len(live) - len(pending)))
        extra = tuple(p.name for p in pending[keep:])
        return Scale(submit=max(0, min_pilots - len(live)), withdraw=extra)
    shortest = min(s for _, s in queued_cpus)
    # active pilots too close to their end for any queued task are leaving: they neither
    # supply cpus nor take up room (their replacements may overlap them for a while)
    useful = pending + [p for p in live if p.state == "active" and p.remaining >= shortest]
    supply = sum(p.cpus for p in pending) + sum(p.free_cpus for p in useful if p.state == "active")
    wanted = math.ceil(max(0.0, demand - supply) / cpus) if cpus > 0 else 0
    room = max(0, max_pilots - len(useful))
    submit = min(wanted, room)
    submit = max(submit, min_pilots - len(live))
    return Scale(submit=max(0, submit))


__all__ = ["PilotView", "Scale", "scale"]
