"""SiteEvents: the server logs a ``site.state_changed`` event when a site of the sites file
changes state — an administrator's ``hexflow sites set``/``clear``, a planned outage that
begins or ends, a health check that fails or recovers — whether or not a run is active
(engines log their own, per run, with ``run`` in the data).

A change is logged once per project the site serves (its ``projects``, else every
project), so that each project reads it and its event triggers fire on it. Events are
keyed ``site:<name>:<change number>:<project>`` and the numbering resumes from the log at
start: a restarted server logs no change twice, and two servers on one database log each
change once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import select

from hexflow.model.events import SITE_STATE_CHANGED, Event, NewEvent
from hexflow.model.sites import SiteState
from hexflow.store import events_sql
from hexflow.store.events_schema import events
from hexflow.store.service_db import ServiceDb

log = logging.getLogger("hexflow.service.sites")
SOURCE = "monitor"  # the ``source`` of these events (engines' have a ``run`` instead)

Observe = Callable[[float], Mapping[str, tuple[SiteState, str]]]


class SiteEvents:
    """Checks the sites every ``interval`` seconds on a daemon thread (``start``/``stop``),
    or once (``check``)."""

    def __init__(
        self,
        db: ServiceDb,
        observe: Observe,
        served: Mapping[str, Collection[str]],
        *,
        interval: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._observe = observe
        self._served = {name: frozenset(p) for name, p in served.items()}  # empty: all
        self.interval = interval
        self._now = clock
        self._last: dict[str, tuple[str, str, int]] | None = None  # state, reason, change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0 or not self._served:
            return
        self._thread = threading.Thread(target=self._loop, name="hexflow-site-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a failed check must not end the watch
                log.exception("checking the sites for state changes failed")
            if self._stop.wait(self.interval):
                return

    def check(self) -> list[Event]:
        """Observe the sites and log each change of state since the last logged one (a
        site first seen not up counts as a change from up)."""
        if self._last is None:
            self._last = self._logged()
        now = self._now()
        states = self._observe(now)
        new: list[NewEvent] = []
        for name, (state, reason) in sorted(states.items()):
            if name not in self._served:
                continue
            last = self._last.get(name)
            if last is None and state is SiteState.UP:
                self._last[name] = (state.value, reason, 0)  # first sight, up: no change
                continue
            previous, _, change = last or (SiteState.UP.value, "", 0)
            if state.value == previous:  # the reason may change (a count of failed checks)
                continue
            change += 1
            self._last[name] = (state.value, reason, change)
            data = {
                "site": name,
                "state": state.value,
                "previous": previous,
                "reason": reason,
                "change": change,
                "source": SOURCE,
            }
            for project in self._projects(name):
                new.append(
                    NewEvent(
                        SITE_STATE_CHANGED,
                        project,
                        name,
                        now,
                        data,
                        key=f"site:{name}:{change}:{project}",
                    )
                )
        if not new:
            return []
        with self._db.write() as conn:
            logged = events_sql.append(conn, new)
        for ev in logged:
            log.info("site %s is %s (%s)", ev.subject, ev.data["state"], ev.data["reason"])
        return logged

    def _projects(self, site: str) -> list[str]:
        served = self._served[site]
        if served:
            return sorted(served)
        return [p.name for p in self._db.accounts.list_projects()]

    def _logged(self) -> dict[str, tuple[str, str, int]]:
        """Each site's last logged state, reason and change number (read once, at start)."""
        query = (
            select(events.c.subject, events.c.data)
            .where(events.c.kind == SITE_STATE_CHANGED, events.c.key.like("site:%"))
            .order_by(events.c.seq)
        )
        out: dict[str, tuple[str, str, int]] = {}
        with self._db.read() as conn:
            for row in conn.execute(query):
                data: dict[str, Any] = json.loads(row.data)
                out[row.subject] = (str(data["state"]), str(data["reason"]), int(data["change"]))
        return out
