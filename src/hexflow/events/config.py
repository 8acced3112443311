"""EventsConfig: the settings of the event bus, the function gateway and triggers in a
``hexflow server`` (part of ServiceConfig; read once at the entry point)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EventsConfig:
    max_payload_bytes: int = 10 * 1024 * 1024  # largest invocation or webhook body (413 beyond)
    rate: float = 5000.0  # invocations a second per project (0: no limit); 429 beyond
    burst: float = 5000.0  # invocations a project may make at once
    sync_wait: float = 30.0  # longest a synchronous invocation waits before answering 202
    poll_interval: float = 0.05  # seconds between reads of the log for other processes' events
    idle_after: float = 30.0  # seconds before workers beyond a pool's minimum stop
    redis_url: str | None = None  # Redis Streams delivery for several server processes
    fault: str | None = None  # crash tests only: freeze at this point (events.faults)
    # Hosts asynchronous invocations may name in ``callback=`` URLs (exact names, or
    # "*.example.org" for its subdomains); none by default: callbacks are refused (422).
    callback_hosts: tuple[str, ...] = field(default_factory=tuple)
    callback_retry_for: float = 3600.0  # seconds a failing callback is retried, then dropped
    callback_timeout: float = 10.0  # seconds one callback POST may take
    upload_max_bytes: int = 5 * 1024**3  # largest pre-signed upload (the handshake)
    upload_ttl: float = 3600.0  # seconds a pre-signed upload URL stays valid
    # Seconds an event is kept once every consumer has handled it (0: every event is kept,
    # replayable from any offset); older ones are pruned every ``prune_every`` seconds.
    retention: float = 0.0
    prune_every: float = 60.0
