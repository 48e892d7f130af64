"""Prometheus metrics: one registry per app, plus live numbers read from running compositors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class LiveCollector(Collector):
    """Sessions running now, read at scrape time. Per-frame figures (frames, drops, keying
    time, latency) come from the compositor's own registry, served alongside."""

    def __init__(self, source: Callable[[], Mapping[str, Any]]):
        self.source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        active = GaugeMetricFamily("greenroom_sessions_active", "Sessions running now")
        active.add_metric([], len(self.source()))
        yield active


class Metrics:
    """Counters and histograms the API and the session manager update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_started = Counter(
            "greenroom_sessions_started", "Sessions started", ["provider"], registry=r
        )
        self.sessions_failed = Counter(
            "greenroom_sessions_failed", "Sessions that failed to start", ["provider"], registry=r
        )
        self.sessions_stopped = Counter(
            "greenroom_sessions_stopped", "Sessions stopped, by reason", ["reason"], registry=r
        )
        self.first_frame = Histogram(
            "greenroom_first_frame_seconds",
            "Session start request to first composited frame",
            buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.requests = Counter(
            "greenroom_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "greenroom_http_request_seconds", "HTTP request time", ["method", "route"], registry=r
        )

    def watch(self, source: Callable[[], Mapping[str, Any]]) -> None:
        self.registry.register(LiveCollector(source))
