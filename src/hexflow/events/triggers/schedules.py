"""When schedule triggers fire: cron expressions (croniter, UTC) or fixed intervals.

``next_tick(config, after, created)`` is pure: the first tick strictly after ``after``.
Interval ticks are counted from the trigger's creation, so every server computes the same
ticks, and the key of a tick's event (``schedule:<id>:<tick>``) lets only one of them log it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from hexflow.errors import SpecError


def check_cron(expr: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(expr):
        raise SpecError(
            f"bad cron expression {expr!r}",
            hint="five fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *' "
            "(a sixth, seconds, may follow)",
            field="config.cron",
        )


def next_tick(config: dict[str, Any], after: float, created: float) -> float:
    every = config.get("every")
    if every:
        k = math.floor((after - created) / every) + 1
        return float(created + max(k, 1) * every)
    from croniter import croniter

    base = datetime.fromtimestamp(after, UTC)
    nxt: float = croniter(config["cron"], base).get_next(float)
    return float(nxt)


def last_tick(config: dict[str, Any], at_or_before: float, created: float) -> float | None:
    """The newest tick at or before ``at_or_before`` (None: none since creation)."""
    every = config.get("every")
    if every:
        k = math.floor((at_or_before - created) / every)
        return created + k * every if k >= 1 else None
    from croniter import croniter

    base = datetime.fromtimestamp(at_or_before, UTC)
    tick = float(croniter(config["cron"], base).get_prev(float))
    if croniter.match(config["cron"], base):
        tick = at_or_before
    return tick if tick > created else None
