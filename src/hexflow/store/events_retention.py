"""Retention of the event log, in SQL: events older than the retention that every consumer
has handled are deleted in bounded batches, and how far the log was pruned is recorded
(the ``~pruned`` row of ``event_offsets``), so a reader asking for events that are gone is
told so instead of silently missing them."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select

from hexflow.store.events_schema import event_offsets, events
from hexflow.store.events_sql import commit_offset, offset

PRUNED = "~pruned"  # the event_offsets row of the pruning (never a consumer's name)


def pruned_upto(conn: Connection) -> int:
    """The newest ``seq`` pruned (0: nothing was)."""
    return offset(conn, PRUNED) or 0


def consumers_upto(conn: Connection) -> int | None:
    """The lowest offset of the log's consumers (None: there is none)."""
    low = conn.execute(
        select(func.min(event_offsets.c.seq)).where(event_offsets.c.consumer != PRUNED)
    ).scalar()
    return None if low is None else int(low)


def prune(conn: Connection, *, before: float, upto: int, now: float, limit: int = 5000) -> int:
    """Delete at most ``limit`` of the oldest events logged before ``before`` with ``seq``
    up to ``upto``; returns how many went. The watermark moves with them."""
    doomed = (
        select(events.c.seq)
        .where(events.c.seq <= upto, events.c.at < before)
        .order_by(events.c.seq)
        .limit(limit)
    )
    seqs = [int(s) for (s,) in conn.execute(doomed)]
    if not seqs:
        return 0
    conn.execute(
        delete(events).where(
            events.c.seq >= seqs[0], events.c.seq <= seqs[-1], events.c.at < before
        )
    )
    commit_offset(conn, PRUNED, seqs[-1], now)
    return len(seqs)


__all__ = ["PRUNED", "consumers_upto", "prune", "pruned_upto"]
