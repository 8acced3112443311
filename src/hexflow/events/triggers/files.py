"""File arrival: watch the directories of file triggers (watchfiles) and report a file once
it is complete.

A file is complete when ``FILE + marker`` exists (the writer creates the marker after the
file), or, without a marker, when its size and modification time have not changed for
``stable_for`` seconds. Files already there when watching starts are checked the same way;
the event key (trigger, path, size, mtime) keeps a file that was reported before from
firing again after a restart.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hexflow.model.triggers import Trigger

log = logging.getLogger("hexflow.triggers")

Arrived = Callable[[Trigger, Path, os.stat_result], Coroutine[Any, Any, None]]


class FileWatcher:
    def __init__(self, arrived: Arrived) -> None:
        self._arrived = arrived
        self._triggers: list[Trigger] = []
        self._changed = asyncio.Event()
        self._pending: dict[tuple[str, str], asyncio.TimerHandle] = {}  # (trigger, path)
        self._reported: dict[tuple[str, str], tuple[int, int]] = {}  # -> (size, mtime_ns)

    def update(self, triggers: list[Trigger]) -> None:
        """The file triggers to watch now (restarts the watch if the set changed)."""
        ids = [(t.id, t.enabled) for t in triggers]
        if ids != [(t.id, t.enabled) for t in self._triggers]:
            self._triggers = list(triggers)
            self._changed.set()

    async def run(self) -> None:
        from watchfiles import awatch

        while True:
            self._changed.clear()
            triggers = [t for t in self._triggers if t.enabled]
            dirs = sorted({t.config["path"] for t in triggers})
            for d in dirs:
                Path(d).mkdir(parents=True, exist_ok=True)
            for t in triggers:
                self._scan(t)
            if not dirs:
                await self._changed.wait()
                continue
            stop = asyncio.Event()
            restart = asyncio.get_running_loop().create_task(self._stop_on_change(stop))
            try:
                async for changes in awatch(
                    *dirs, stop_event=stop, step=10, debounce=200, recursive=False
                ):
                    for _change, path in changes:
                        self._seen(Path(path), triggers)
            except Exception:  # noqa: BLE001 - a directory vanished: watch again
                log.exception("file watch failed; restarting")
                await asyncio.sleep(1.0)
            finally:
                restart.cancel()

    async def _stop_on_change(self, stop: asyncio.Event) -> None:
        await self._changed.wait()
        stop.set()

    def _scan(self, trigger: Trigger) -> None:
        try:
            names = os.listdir(trigger.config["path"])
        except OSError:
            return
        for name in names:
            self._seen(Path(trigger.config["path"]) / name, [trigger])

    def _seen(self, path: Path, triggers: list[Trigger]) -> None:
        for t in triggers:
            if str(path.parent) != str(Path(t.config["path"])):
                continue
            marker = t.config.get("marker")
            name = path.name
            if marker:
                if not name.endswith(marker):
                    continue
                data = path.with_name(name[: -len(marker)])
                if fnmatch.fnmatch(data.name, t.config["pattern"]) and data.exists():
                    self._check(t, data, stable_for=0.0)
            elif fnmatch.fnmatch(name, t.config["pattern"]):
                self._check(t, path, stable_for=float(t.config.get("stable_for", 0.1)))

    def _check(
        self, t: Trigger, path: Path, *, stable_for: float, last: tuple[int, int] | None = None
    ) -> None:
        key = (t.id, str(path))
        old = self._pending.pop(key, None)
        if old is not None:
            old.cancel()
        try:
            st = path.stat()
        except OSError:
            return  # gone again
        now = (st.st_size, st.st_mtime_ns)
        if self._reported.get(key) == now:
            return
        if stable_for > 0 and now != last:
            loop = asyncio.get_running_loop()
            self._pending[key] = loop.call_later(
                stable_for, lambda: self._check(t, path, stable_for=stable_for, last=now)
            )
            return
        self._reported[key] = now
        asyncio.get_running_loop().create_task(self._arrived(t, path, st))
