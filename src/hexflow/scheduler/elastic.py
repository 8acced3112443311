"""Elastic pools: time-of-day plans (how many nodes each pool should have, when) and resizes.

Pure. ``parse_plan`` validates a plan read from YAML/JSON (errors name the bad field, e.g.
``pools[0].windows[1].hours``); ``targets(plan, t)`` gives each pool's node count at local
wall-clock time ``t`` (seconds since the epoch); ``resize`` says which nodes of one pool
leave, drain, come back or must be added to reach a target. Invariants: without ``force``
a resize never takes a node that holds work (busy nodes drain: DRAINING with ``leaves_at``
set), and it never leaves a pool with more UP nodes than asked when shrinking, nor asks for
more than the target when growing. DOWN nodes are neither counted nor touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from hexflow.errors import SpecError
from hexflow.model import QoS
from hexflow.scheduler.cluster import Node, NodeState
from hexflow.scheduler.decisions import RunningTask

DAY = 86_400
WEEK = 7 * DAY
_MONDAY = 4 * DAY  # 1970-01-05 00:00, the first Monday after the epoch
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """``nodes`` on ``days`` (0 = Monday) from minute ``start`` to minute ``end`` of the day."""

    days: frozenset[int]
    start: int
    end: int
    nodes: int

    def covers(self, day: int, minute: int) -> bool:
        return day in self.days and self.start <= minute < self.end


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """One pool: ``nodes`` outside its windows (``None``: the rest of the machine), the
    windows (the first that covers a time wins) and the QoS classes routed to it."""

    name: str
    nodes: int | None
    windows: tuple[Window, ...] = ()
    qos: frozenset[QoS] = frozenset()

    @property
    def rest(self) -> bool:
        return self.nodes is None


@dataclass(frozen=True, slots=True)
class Plan:
    """Pools in order, over a machine of ``total`` nodes. At most one pool is the rest."""

    pools: tuple[PoolPlan, ...]
    total: int

    def pool_for(self, qos: QoS) -> str:
        """The pool that runs work of class ``qos``: the first that lists it, else the rest
        pool, else the first pool that lists no class, else the first pool."""
        for pool in self.pools:
            if qos in pool.qos:
                return pool.name
        fallback = [p for p in self.pools if p.rest] or [p for p in self.pools if not p.qos]
        return (fallback or list(self.pools))[0].name

    def most(self, pool: str) -> int:
        """The most nodes ``pool`` has at any time of the week."""
        return max(targets(self, float(_MONDAY + b))[pool] for b in (0, *_boundaries(self)))


def _local(t: float) -> tuple[int, int]:
    """(weekday with Monday 0, minute of the day) of local time ``t``."""
    day = (math.floor(t / DAY) + 3) % 7  # 1970-01-01 was a Thursday
    return day, int(t % DAY // 60)


def targets(plan: Plan, t: float) -> dict[str, int]:
    """Node count of each pool at local time ``t`` (seconds since the epoch)."""
    day, minute = _local(t)
    counts: dict[str, int] = {}
    rest: str | None = None
    for pool in plan.pools:
        if pool.nodes is None:
            rest = pool.name
            continue
        counts[pool.name] = next(
            (w.nodes for w in pool.windows if w.covers(day, minute)), pool.nodes
        )
    if rest is not None:
        counts[rest] = max(plan.total - sum(counts.values()), 0)
    return {p.name: counts[p.name] for p in plan.pools}


def _boundaries(plan: Plan) -> list[int]:
    """Seconds after Monday 00:00 where some window starts or ends, sorted."""
    found = {
        (day * DAY + edge * 60) % WEEK
        for pool in plan.pools
        for window in pool.windows
        for day in window.days
        for edge in (window.start, window.end)
    }
    return sorted(found)


def next_change(plan: Plan, t: float) -> float:
    """The first time after ``t`` at which ``targets`` may change; ``inf`` if never.

    Edges are whole minutes, so the answer is a whole second: exact, and strictly later
    than ``t`` however large ``t`` is (no rounding can make a caller's clock stand still).
    """
    edges = _boundaries(plan)
    if not edges:
        return math.inf
    second = math.floor(t)
    into = (second - _MONDAY) % WEEK
    later = [e for e in edges if e > into]
    return float(second + ((later[0] if later else edges[0] + WEEK) - into))


# -- parsing --------------------------------------------------------------------------


def _bad(where: str, message: str, hint: str | None = None) -> SpecError:
    return SpecError(f"plan: {where}: {message}", hint=hint, field=where)


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(where, f"expected a node count (a whole number >= 0), got {value!r}")
    return value


def _days(value: object, where: str) -> frozenset[int]:
    items = value if isinstance(value, list) else str(value).replace(" ", "").split(",")
    hint = "write days like mon-fri, sat,sun, [mon, wed] or all"
    days: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        if text in ("all", "*", "daily"):
            days.update(range(7))
            continue
        first, sep, last = text.partition("-")
        if first not in DAY_NAMES or (sep and last not in DAY_NAMES):
            raise _bad(where, f"cannot read {item!r} as a day or a range of days", hint)
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if sep else a
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    if not days:
        raise _bad(where, "names no day", hint)
    return frozenset(days)


def _minute(text: str) -> int | None:
    hour, sep, minute = text.strip().partition(":")
    if not hour.isdigit() or (sep and not (minute.isdigit() and len(minute) == 2)):
        return None
    value = int(hour) * 60 + (int(minute) if sep else 0)
    return value if value <= 24 * 60 and int(minute or 0) < 60 else None


def _hours(value: object, where: str) -> tuple[int, int]:
    text = str(value)
    first, sep, last = text.partition("-")
    start, end = _minute(first), _minute(last) if sep else None
    hint = "write hours as START-END on a 24-hour clock, e.g. 08-18 or 08:30-17:45"
    if start is None or end is None:
        raise _bad(where, f"cannot read {value!r} as hours", hint)
    if start >= end:
        raise _bad(where, f"{value!r} ends before it starts", "split a night into two windows")
    return start, end


def _mapping(value: object, where: str, keys: set[str]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise _bad(where, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise _bad(f"{where}.{unknown[0]}", "unknown key", "known keys: " + ", ".join(sorted(keys)))
    return value


def parse_plan(data: object, total: int) -> Plan:
    """A validated plan from loaded YAML/JSON, for a machine of ``total`` nodes."""
    top = _mapping(data, "plan", {"pools"})
    pools_data = top.get("pools")
    if not isinstance(pools_data, list) or not pools_data:
        raise _bad("pools", "expected a non-empty list of pools")
    pools: list[PoolPlan] = []
    for i, entry in enumerate(pools_data):
        where = f"pools[{i}]"
        item = _mapping(entry, where, {"name", "nodes", "windows", "qos"})
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad(f"{where}.name", f"expected a pool name, got {name!r}")
        if any(p.name == name for p in pools):
            raise _bad(f"{where}.name", f"pool {name!r} appears twice")
        raw = item.get("nodes")
        nodes = None if raw == "rest" else _count(raw, f"{where}.nodes")
        windows: list[Window] = []
        raw_windows = item.get("windows")
        raw_windows = [] if raw_windows is None else raw_windows
        if not isinstance(raw_windows, list):
            raise _bad(f"{where}.windows", "expected a list of windows")
        for k, w in enumerate(raw_windows):
            at = f"{where}.windows[{k}]"
            spec = _mapping(w, at, {"days", "hours", "nodes"})
            if nodes is None:
                raise _bad(at, "the rest pool has no windows: it gets what the others leave")
            start, end = _hours(spec.get("hours", "00-24"), f"{at}.hours")
            days = _days(spec.get("days", "all"), f"{at}.days")
            windows.append(Window(days, start, end, _count(spec.get("nodes"), f"{at}.nodes")))
        raw_qos = item.get("qos") or []
        if not isinstance(raw_qos, list):
            raw_qos = [raw_qos]
        try:
            qos = frozenset(QoS.parse(str(q)) for q in raw_qos)
        except SpecError as exc:
            raise _bad(f"{where}.qos", exc.message, exc.hint) from None
        pools.append(PoolPlan(name, nodes, tuple(windows), qos))
    rests = [p.name for p in pools if p.rest]
    if len(rests) > 1:
        raise _bad("pools", f"only one pool may take the rest; {', '.join(rests)} all do")
    plan = Plan(tuple(pools), total)
    for edge in (0, *_boundaries(plan)):
        t = float(_MONDAY + edge)
        asked = sum(n for name, n in targets(plan, t).items() if name not in rests)
        if asked > total:
            day, minute = _local(t)
            raise _bad(
                "pools",
                f"on {DAY_NAMES[day]} at {minute // 60:02d}:{minute % 60:02d} the pools ask "
                f"for {asked} nodes; the machine has {total}",
                "lower a pool's nodes or give the machine more nodes (--nodes)",
            )
    return plan


# -- resizing one pool ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resize:
    """What one pool does to reach its target. ``release``: nodes that leave now;
    ``drain``: (node, leaves_at) set DRAINING; ``restore``: DRAINING nodes UP again;
    ``stop``: tasks to stop (``force`` only); ``grow``: nodes still wanted from outside."""

    release: tuple[str, ...] = ()
    drain: tuple[tuple[str, float], ...] = ()
    restore: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    grow: int = 0


def resize(
    nodes: Sequence[Node],
    running: Sequence[RunningTask],
    target: int,
    now: float,
    force: bool = False,
) -> Resize:
    """How the pool of ``nodes`` reaches ``target`` UP nodes, given the work running on it.

    Shrinking releases idle UP nodes first (the last ones in pool order), then drains busy
    ones, soonest free first (with ``force`` they are released and their tasks stopped).
    Growing first restores DRAINING nodes (busy ones first), then asks for more (``grow``).
    DRAINING nodes that are not restored are released once idle (or at once with force).
    """
    if target < 0:
        raise ValueError(f"target must be >= 0, got {target}")
    work: dict[str, list[tuple[float, str]]] = {}  # node -> [(expected end, task id)]
    for task in running:
        for slot in task.slots:
            work.setdefault(slot.node, []).append((task.expected_end, task.task_id))

    up = [n for n in nodes if n.state is NodeState.UP]
    draining = [n for n in nodes if n.state is NodeState.DRAINING]
    release: list[str] = []
    drain: list[tuple[str, float]] = []
    restore: list[str] = []
    grow = 0
    leaving: list[Node] = []  # busy nodes that leave now (force)
    if len(up) > target:
        surplus = len(up) - target
        idle = [n for n in reversed(up) if n.name not in work]
        busy = sorted(
            (n for n in up if n.name in work), key=lambda n: (_busy_until(work, n), n.name)
        )
        for node in (idle + busy)[:surplus]:
            if node.name not in work:
                release.append(node.name)
            elif force:
                leaving.append(node)
            else:
                drain.append((node.name, max(_busy_until(work, node), now)))
    elif len(up) < target:
        deficit = target - len(up)
        # Busy draining nodes first, latest to free first: they could not leave soon anyway.
        order = sorted(draining, key=lambda n: (n.name not in work, -_busy_until(work, n), n.name))
        restore = [n.name for n in order[:deficit]]
        grow = deficit - len(restore)
    for node in draining:
        if node.name in restore:
            continue
        if node.name not in work:
            release.append(node.name)
        elif force:
            leaving.append(node)
    stop: dict[str, None] = {}
    for node in leaving:
        release.append(node.name)
        for _, task_id in sorted(work[node.name]):
            stop[task_id] = None
    return Resize(tuple(release), tuple(drain), tuple(restore), tuple(stop), grow)


def _busy_until(work: Mapping[str, list[tuple[float, str]]], node: Node) -> float:
    """The latest expected end of the work on ``node`` (0 if idle)."""
    held = work.get(node.name)
    return max(end for end, _ in held) if held else 0.0


def apply_resize(nodes: Sequence[Node], change: Resize) -> tuple[Node, ...]:
    """The pool's nodes after ``change`` (released ones gone; new ones the caller adds)."""
    gone = set(change.release)
    drains = dict(change.drain)
    back = set(change.restore)
    result: list[Node] = []
    for node in nodes:
        if node.name in gone:
            continue
        if node.name in drains:
            node = replace(node, state=NodeState.DRAINING, leaves_at=drains[node.name])
        elif node.name in back:
            node = replace(node, state=NodeState.UP, leaves_at=None)
        result.append(node)
    return tuple(result)


__all__ = [
    "DAY_NAMES",
    "Plan",
    "PoolPlan",
    "Resize",
    "Window",
    "apply_resize",
    "next_change",
    "parse_plan",
    "resize",
    "targets",
]
