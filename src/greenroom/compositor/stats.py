"""Per-session counters and latency windows, mirrored into Prometheus metrics.

``REGISTRY`` is a registry of its own (not the process default), so the API can serve
exactly the compositor metrics at ``/metrics`` with ``prometheus_client.generate_latest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

logger = logging.getLogger("greenroom.compositor")

REGISTRY = CollectorRegistry(auto_describe=True)

_LABELS = ("session", "avatar")
_MS_BUCKETS = (0.002, 0.004, 0.008, 0.012, 0.016, 0.025, 0.033, 0.05, 0.075, 0.1, 0.2, 0.5)

FRAMES_IN = Counter(
    "greenroom_compositor_frames_in",
    "Avatar video frames received by the compositor",
    _LABELS,
    registry=REGISTRY,
)
FRAMES_OUT = Counter(
    "greenroom_compositor_frames_out",
    "Composited frames published (avatar frames, not waiting frames)",
    _LABELS,
    registry=REGISTRY,
)
FRAMES_DROPPED = Counter(
    "greenroom_compositor_frames_dropped",
    "Avatar frames not published: replaced by a newer one, too old, over the fps cap, or failed",
    (*_LABELS, "reason"),
    registry=REGISTRY,
)
KEYING_SECONDS = Histogram(
    "greenroom_compositor_keying_seconds",
    "Key + composite time per frame on the worker thread",
    _LABELS,
    buckets=_MS_BUCKETS,
    registry=REGISTRY,
)
ADDED_LATENCY_SECONDS = Histogram(
    "greenroom_compositor_added_latency_seconds",
    "Frame received from the avatar track -> composited frame handed to the encoder",
    _LABELS,
    buckets=_MS_BUCKETS,
    registry=REGISTRY,
)
E2E_LATENCY_SECONDS = Histogram(
    "greenroom_compositor_capture_to_publish_seconds",
    "Avatar capture timestamp -> composited frame handed to the encoder (same clock only)",
    _LABELS,
    buckets=(*_MS_BUCKETS, 1.0),
    registry=REGISTRY,
)
AUDIO_OFFSET_SECONDS = Gauge(
    "greenroom_compositor_audio_offset_seconds",
    "Video path delay minus audio path delay (positive: audio leads)",
    _LABELS,
    registry=REGISTRY,
)
VOICE_LAG_SECONDS = Gauge(
    "greenroom_compositor_voice_lag_seconds",
    "How much later than its picture the avatar's voice reaches the compositor; frames wait that long",
    _LABELS,
    registry=REGISTRY,
)
OUTPUT_FPS = Gauge(
    "greenroom_compositor_output_fps",
    "Composited frames published per second over the last window",
    _LABELS,
    registry=REGISTRY,
)
AVATAR_PRESENT = Gauge(
    "greenroom_compositor_avatar_present",
    "1 while the avatar's camera is subscribed, 0 while waiting for it",
    _LABELS,
    registry=REGISTRY,
)

_WINDOW = 300  # samples kept for p50/p95 (10 s at 30 fps)


def _pct(values: deque[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.fromiter(values, np.float64, len(values)), q))


class SessionStats:
    """Counters and rolling windows of one compositor session; thread-safe."""

    def __init__(self, session: str, avatar: str) -> None:
        self.session = session
        self.avatar = avatar
        self._labels = {"session": session, "avatar": avatar}
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.waiting_frames_out = 0
        self.dropped: dict[str, int] = {"replaced": 0, "late": 0, "rate": 0, "error": 0}
        self._keying_ms: deque[float] = deque(maxlen=_WINDOW)
        self._latency_ms: deque[float] = deque(maxlen=_WINDOW)
        self._e2e_ms: deque[float] = deque(maxlen=_WINDOW)
        self._out_times: deque[float] = deque(maxlen=_WINDOW)
        self.audio_offset_ms: float | None = None
        self.audio_delay_ms: float | None = None
        self.audio_frames = 0
        self.audio_skipped = 0  # frames skipped to catch up with the picture
        self.video_restarts = 0  # camera subscriptions renewed after a stall
        self.voice_lag_ms = 0.0  # frames wait this long for the voice (see ``lip_sync``)
        self.receive_buffer_ms: dict[str, float | None] = {"audio": None, "video": None}
        self.resolution: tuple[int, int] | None = None
        self.avatar_present = False
        self._m_in = FRAMES_IN.labels(**self._labels)
        self._m_out = FRAMES_OUT.labels(**self._labels)
        self._m_key = KEYING_SECONDS.labels(**self._labels)
        self._m_lat = ADDED_LATENCY_SECONDS.labels(**self._labels)
        self._m_e2e = E2E_LATENCY_SECONDS.labels(**self._labels)
        self._m_audio = AUDIO_OFFSET_SECONDS.labels(**self._labels)
        self._m_lag = VOICE_LAG_SECONDS.labels(**self._labels)
        self._m_fps = OUTPUT_FPS.labels(**self._labels)
        self._m_present = AVATAR_PRESENT.labels(**self._labels)
        self._m_drop = {r: FRAMES_DROPPED.labels(**self._labels, reason=r) for r in self.dropped}

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
        self._m_in.inc()

    def drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1
        self._m_drop[reason].inc()

    def frame_out(
        self, now: float, keying_ms: float, latency_ms: float, e2e_ms: float | None
    ) -> None:
        with self._lock:
            self.frames_out += 1
            self._keying_ms.append(keying_ms)
            self._latency_ms.append(latency_ms)
            self._out_times.append(now)
            if e2e_ms is not None:
                self._e2e_ms.append(e2e_ms)
        self._m_out.inc()
        self._m_key.observe(keying_ms / 1000)
        self._m_lat.observe(latency_ms / 1000)
        if e2e_ms is not None:
            self._m_e2e.observe(e2e_ms / 1000)

    def waiting_frame_out(self) -> None:
        with self._lock:
            self.waiting_frames_out += 1

    def set_avatar_present(self, present: bool) -> None:
        self.avatar_present = present
        self._m_present.set(1 if present else 0)

    def audio(self, delay_ms: float, offset_ms: float) -> None:
        with self._lock:
            self.audio_frames += 1
            a = 0.05 if self.audio_offset_ms is not None else 1.0
            prev_o = self.audio_offset_ms or 0.0
            prev_d = self.audio_delay_ms or 0.0
            self.audio_offset_ms = prev_o + a * (offset_ms - prev_o)
            self.audio_delay_ms = prev_d + a * (delay_ms - prev_d)
        self._m_audio.set(self.audio_offset_ms / 1000)

    def voice_lag(self, lag_s: float, audio_ms: float | None, video_ms: float | None) -> None:
        """A reading of the receiver: the lag frames wait for, and the mean time audio and
        video spent in its jitter buffers."""
        with self._lock:
            self.voice_lag_ms = round(lag_s * 1000, 1)
            self.receive_buffer_ms = {"audio": audio_ms, "video": video_ms}
        self._m_lag.set(lag_s)

    def latency_p50_ms(self) -> float | None:
        with self._lock:
            return _pct(self._latency_ms, 50)

    def output_fps(self, now: float, window: float = 2.0) -> float:
        with self._lock:
            n = sum(1 for t in self._out_times if now - t <= window)
        return n / window

    def snapshot(self, now: float) -> dict[str, object]:
        """Everything ``Compositor.metrics()`` reports, as plain numbers."""
        fps = self.output_fps(now)
        self._m_fps.set(fps)
        with self._lock:
            return {
                "session": self.session,
                "avatar": self.avatar,
                "avatar_present": self.avatar_present,
                "resolution": list(self.resolution) if self.resolution else None,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "waiting_frames_out": self.waiting_frames_out,
                "dropped": sum(self.dropped.values()),
                "dropped_by_reason": dict(self.dropped),
                "output_fps": round(fps, 2),
                "keying_ms_p50": _pct(self._keying_ms, 50),
                "keying_ms_p95": _pct(self._keying_ms, 95),
                "latency_ms_p50": _pct(self._latency_ms, 50),
                "latency_ms_p95": _pct(self._latency_ms, 95),
                "capture_to_publish_ms_p50": _pct(self._e2e_ms, 50),
                "capture_to_publish_ms_p95": _pct(self._e2e_ms, 95),
                "audio_delay_ms": self.audio_delay_ms,
                "audio_offset_ms": self.audio_offset_ms,
                "audio_frames": self.audio_frames,
                "audio_skipped": self.audio_skipped,
                "video_restarts": self.video_restarts,
                "voice_lag_ms": self.voice_lag_ms,
                "receive_buffer_ms": dict(self.receive_buffer_ms),
            }

    def close(self) -> None:
        """Remove this session's label sets so finished sessions do not linger in /metrics."""
        for metric in (
            FRAMES_IN,
            FRAMES_OUT,
            KEYING_SECONDS,
            ADDED_LATENCY_SECONDS,
            E2E_LATENCY_SECONDS,
            AUDIO_OFFSET_SECONDS,
            VOICE_LAG_SECONDS,
            OUTPUT_FPS,
            AVATAR_PRESENT,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(self.session, self.avatar)
        for reason in self.dropped:
            with contextlib.suppress(KeyError):
                FRAMES_DROPPED.remove(self.session, self.avatar, reason)


class StatsReporter:
    """Logs one line of a session's figures every ``interval`` seconds, with the whole
    snapshot in the record's ``greenroom_stats`` attribute (for JSON log formatters)."""

    def __init__(self, stats: SessionStats, interval: float) -> None:
        self._stats = stats
        self._interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.log(time.monotonic())

    def log(self, now: float) -> None:
        m = self._stats.snapshot(now)
        logger.info(
            "compositor stats session=%s fps=%.1f in=%d out=%d dropped=%d key_p95=%s "
            "latency_p50=%s latency_p95=%s audio_offset=%s voice_lag=%s",
            m["session"],
            m["output_fps"],
            m["frames_in"],
            m["frames_out"],
            m["dropped"],
            _ms(m["keying_ms_p95"]),
            _ms(m["latency_ms_p50"]),
            _ms(m["latency_ms_p95"]),
            _ms(m["audio_offset_ms"]),
            _ms(m["voice_lag_ms"]),
            extra={"greenroom_stats": m, "session": m["session"]},
        )


def _ms(v: object) -> str:
    return "-" if not isinstance(v, int | float) else f"{float(v):.1f}ms"
