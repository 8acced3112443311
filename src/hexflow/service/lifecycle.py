"""The service's lifecycle schedule (docs/data.md): the storage settings' lifecycle rules
applied to every project's replicas on this site every ``interval`` seconds, on a daemon
thread, as ``hexflow data lifecycle`` does by hand. Each action, done or failed, is audited
by the runner (actor ``lifecycle``); a pass that fails (a database hiccup) is logged and the
next one runs on time. ``interval`` 0 turns the schedule off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from hexflow.data.lifecycle_run import finished_runs
from hexflow.service.data import DataService

log = logging.getLogger("hexflow.service.lifecycle")


class LifecycleSchedule:
    """Runs ``DataService.apply_lifecycle`` every ``interval`` seconds on a daemon thread."""

    def __init__(
        self,
        data: DataService,
        finished: Callable[[Iterable[str]], frozenset[str]],
        interval: float = 3600.0,
    ) -> None:
        self._data = data
        self._finished = finished
        self.interval = interval
        self.passes = 0  # passes run (done or failed), for tests and metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0 or not self._data.storage.lifecycle:
            return  # off, or nothing to apply
        self._thread = threading.Thread(target=self._loop, name="hexflow-lifecycle", daemon=True)
        self._thread.start()

    def run_once(self) -> list[dict[str, Any]]:
        try:
            results = self._data.apply_lifecycle(self._finished)
        finally:
            self.passes += 1
        for r in results:
            if r["outcome"] != "skipped":
                log.info(
                    "lifecycle: %s %s on %s: %s", r["action"], r["ref"], r["from"], r["outcome"]
                )
        return results

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a failed pass must not end the schedule
                log.exception("applying the lifecycle rules failed; trying again next time")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


__all__ = ["LifecycleSchedule", "finished_runs"]
