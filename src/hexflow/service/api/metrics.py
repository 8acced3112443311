"""Prometheus metrics of one app (its own registry, no globals): requests by route and
status, request latency, runs driven and queued."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hexflow.store.group_commit import GroupWriter


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.hot_path_calls = 0  # requests answered by hotpath.HotPaths (not exported)
        self.requests = Counter(
            "hexflow_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hexflow_http_request_duration_seconds",
            "time to answer an HTTP request",
            ["route"],
            registry=self.registry,
        )
        self.runs_submitted = Counter(
            "hexflow_runs_submitted", "runs created through the API", registry=self.registry
        )
        self.runs_active = Gauge("hexflow_runs_active", "runs being driven", registry=self.registry)
        self.runs_queued = Gauge(
            "hexflow_runs_queued", "runs waiting for a driver", registry=self.registry
        )

        self.group_commits = Gauge(
            "hexflow_group_commits", "transactions of the group commit", registry=self.registry
        )
        self.group_commit_writes = Gauge(
            "hexflow_group_commit_writes",
            "requests' writes (runs, keys, audit entries) committed in them",
            registry=self.registry,
        )
        self.group_commit_seconds = Gauge(
            "hexflow_group_commit_seconds",
            "seconds spent writing and committing them",
            registry=self.registry,
        )

    def watch_runs(self, active: Callable[[], float], queued: Callable[[], float]) -> None:
        self.runs_active.set_function(active)
        self.runs_queued.set_function(queued)

    def watch_group_commit(self, writer: GroupWriter) -> None:
        self.group_commits.set_function(lambda: writer.batches)
        self.group_commit_writes.set_function(lambda: writer.written)
        self.group_commit_seconds.set_function(lambda: writer.busy_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
