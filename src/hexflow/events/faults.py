"""Fault points for crash tests: at a named point of the event path, a server configured
with that point (``EventsConfig.fault``) writes ``<home>/fault-<point>`` and freezes, so
that a test can ``kill -9`` it exactly there. Unconfigured, a point costs one comparison."""

from __future__ import annotations

import os
import time
from pathlib import Path

# The points, in the order an event travels.
EVENT_LOGGED = "event-logged"  # a webhook's event is committed; no trigger has seen it
INVOCATION_COMMITTED = "invocation-committed"  # an action's invocation is committed; not run
OFFSET_PENDING = "offset-pending"  # a consumer handled a batch; its offset is not committed
POINTS = frozenset({EVENT_LOGGED, INVOCATION_COMMITTED, OFFSET_PENDING})


class Faults:
    def __init__(self, point: str | None, home: Path) -> None:
        self.point = point or None
        self._home = home

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        (self._home / f"fault-{point}").write_text(str(os.getpid()))
        while True:  # frozen until killed: the test's kill -9 lands exactly here
            time.sleep(3600)
