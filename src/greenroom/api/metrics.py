"""Prometheus metrics: one registry per app, plus live numbers read from running compositors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# compositor.metrics() keys exported per session, with their help text.
COMPOSITOR_GAUGES = {
    "frames_in": "Avatar frames the compositor received",
    "frames_out": "Composited frames the compositor published",
    "dropped": "Avatar frames the compositor dropped",
    "keying_ms_p50": "Keying + compositing time per frame, median (ms)",
    "keying_ms_p95": "Keying + compositing time per frame, 95th percentile (ms)",
    "latency_ms_p50": "Avatar frame in to composited frame out, median (ms)",
    "latency_ms_p95": "Avatar frame in to composited frame out, 95th percentile (ms)",
    "audio_offset_ms": "Audio offset applied to keep lip sync (ms)",
}


class LiveCollector(Collector):
    """Reads ``{session_id: compositor.metrics()}`` at scrape time."""

    def __init__(self, source: Callable[[], Mapping[str, Mapping[str, Any]]]):
        self.source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        live = dict(self.source())
        active = GaugeMetricFamily("greenroom_sessions_active", "Sessions running now")
        active.add_metric([], len(live))
        yield active
        for key, help_text in COMPOSITOR_GAUGES.items():
            fam = GaugeMetricFamily(f"greenroom_compositor_{key}", help_text, labels=["session"])
            for sid, values in live.items():
                value = values.get(key) if values else None
                if isinstance(value, int | float):
                    fam.add_metric([sid], float(value))
            yield fam


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

    def watch(self, source: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.registry.register(LiveCollector(source))
