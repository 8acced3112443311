"""RemoteHandle: what the SDK's handles of things on a server share (``RemoteRun``,
``Invocation``): their latest JSON view ``info``, ``id``/``state``/``ok``, ``refresh``, and
waiting for a terminal state with growing poll intervals."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Self


def poll_delays(first: float, most: float) -> Iterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * 1.5, most)


class RemoteHandle(ABC):
    TERMINAL: ClassVar[frozenset[str]] = frozenset()
    FIRST_POLL: ClassVar[float] = 0.05
    LONGEST_POLL: ClassVar[float] = 1.0

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    @property
    def id(self) -> str:
        return str(self.info["id"])

    @property
    def state(self) -> str:
        return str(self.info["state"])

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    @abstractmethod
    def _fetch(self) -> dict[str, Any]:
        """Its JSON view, read from the server now."""

    def _what(self) -> str:
        return f"{type(self).__name__.lower()} {self.id}"

    def refresh(self) -> Self:
        self.info = self._fetch()
        return self

    def done(self) -> bool:
        """Whether it has ended (asks the server unless it is known to have)."""
        return self.state in self.TERMINAL or self.refresh().state in self.TERMINAL

    def wait(self, timeout: float | None = None) -> Self:
        """Block until it has ended (``TimeoutError`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in poll_delays(self.FIRST_POLL, self.LONGEST_POLL):
            if self.done():
                return self
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"{self._what()} did not end in time")
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["RemoteHandle", "poll_delays"]
