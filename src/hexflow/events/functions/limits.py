"""Per-project rate limits of the function gateway: a token bucket per project (``rate``
calls a second, bursts of ``burst``). Pure: time is an argument."""

from __future__ import annotations


class RateLimiter:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # project -> (tokens, at)

    def take(self, project: str, now: float) -> float:
        """0.0 when the call may go; else the seconds to wait before a retry may succeed."""
        if self.rate <= 0:
            return 0.0
        tokens, at = self._buckets.get(project, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[project] = (tokens - 1.0, now)
            return 0.0
        self._buckets[project] = (tokens, now)
        return (1.0 - tokens) / self.rate
