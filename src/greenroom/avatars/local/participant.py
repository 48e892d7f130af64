"""``LocalAvatar``: the built-in presenter as a LiveKit participant.

It joins a room as kind ``agent``, publishes one camera track (the renderer's I420 frames on
a steady clock) and one microphone track (48 kHz mono: espeak-ng speech, silence when idle),
and keeps its state in the participant attribute ``greenroom.avatar.state``.

Timing:
- video: a thread renders frame ``n`` for the absolute deadline ``t0 + n / fps`` and captures
  it with that monotonic time; if it falls behind it skips to the current frame (no bursts,
  no drift);
- audio: an event-loop task pushes 10 ms frames 60 ms ahead of real time on absolute
  deadlines; the mouth drawn for time ``t`` is the envelope of the audio that plays at ``t``.

Example::

    avatar = await LocalAvatar.start(target, identity="presenter")
    await avatar.say("Hello! I am the built-in avatar.")
    await avatar.wait_idle()
    await avatar.aclose()
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc

from greenroom.avatars.base import RoomTarget
from greenroom.avatars.local._room import RoomAvatar
from greenroom.avatars.local.renderer import AvatarRenderer
from greenroom.errors import InvalidInput

log = logging.getLogger(__name__)

QUALITIES = {"high": (1280, 720), "medium": (960, 540), "low": (640, 360)}


@dataclass
class VideoStats:
    """Counters of the video thread (read them from anywhere)."""

    frames: int = 0  # captured
    skipped: int = 0  # deadlines missed by more than a frame and skipped
    errors: int = 0
    render_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=300)
    )


#: Sensor noise (standard deviation, 8-bit levels) of the avatar as published. A rendered
#: presenter carries little grain, and grain is what its VP8 encoder pays for: one 720p30
#: layer cost 32 % of a core at the renderer's sigma 2 (its default, which keying tests
#: keep), 17 % at 0.7 and 14 % at 0 (``docs/benchmarks.md``, built-in avatar).
PUBLISHED_NOISE = 0.7


class LocalAvatar(RoomAvatar):
    """The built-in avatar in a room. Create it with :meth:`start`.

    Args:
        target: server, keys and room.
        identity: participant identity (default ``local-avatar-<6 hex>``).
        voice, rate: espeak-ng voice and words per minute.
        width, height, fps: video format (default 1280x720 at 30).
        avatar_id: any string; it seeds the hair strands and the blink pattern.
        composited_by: identity of the participant that composites this avatar (the
            compositor ``greenroom-<identity>``, or the agent a compositor is attached to).
            Only it may subscribe to the raw tracks, and the avatar carries
            ``lk.publish_on_behalf`` = it, so LiveKit's agents frontends never show the raw
            green picture. ``None``: anyone may subscribe (tests, ``greenroom avatar``).
    """

    provider = "local"

    def __init__(
        self,
        target: RoomTarget,
        *,
        identity: str | None = None,
        name: str | None = None,
        voice: str | None = None,
        rate: int | None = None,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        noise: float = PUBLISHED_NOISE,
        avatar_id: str = "default",
        renderer: AvatarRenderer | None = None,
        composited_by: str | None = None,
    ) -> None:
        super().__init__(
            target,
            identity=identity,
            name=name,
            voice=voice,
            rate=rate,
            composited_by=composited_by,
        )
        if not isinstance(avatar_id, str) or not avatar_id:
            raise InvalidInput("avatar_id must be a non-empty string", field="avatar_id")
        self.avatar_id = avatar_id
        self.renderer = renderer or AvatarRenderer(
            width, height, fps, noise=noise, seed=_seed(avatar_id)
        )
        self.width, self.height = self.renderer.width, self.renderer.height
        self.fps = self.renderer.fps
        self.video_stats = VideoStats()
        self._t_start = time.monotonic()

    @classmethod
    async def start(cls, target: RoomTarget, **kwargs: Any) -> LocalAvatar:
        """Join ``target.room`` and start publishing; returns once both tracks are published.

        The renderer's layers are drawn in a worker thread, so the event loop stays free.

        Raises:
            SetupError: espeak-ng is not installed.
            InvalidInput: a bad argument (``field`` names it).
        """
        if "renderer" not in kwargs:
            avatar_id = kwargs.get("avatar_id", "default")
            if not isinstance(avatar_id, str) or not avatar_id:
                raise InvalidInput("avatar_id must be a non-empty string", field="avatar_id")
            kwargs["renderer"] = await asyncio.to_thread(
                renderer_for,
                avatar_id,
                kwargs.pop("width", 1280),
                kwargs.pop("height", 720),
                kwargs.pop("fps", 30.0),
                kwargs.pop("noise", PUBLISHED_NOISE),
            )
        self = cls(target, **kwargs)
        await self._start()
        return self

    async def _prepare(self) -> None:
        await super()._prepare()
        # compile/warm the kernels off the event loop
        await asyncio.to_thread(self.renderer.render_i420, 0.0, 0.0, want_alpha=False)
        self._t_start = time.monotonic()

    def _video_loop(self) -> None:
        """Render and capture frames on absolute deadlines (runs in its own thread)."""
        r, src, stats = self.renderer, self._video_source, self.video_stats
        period = 1.0 / self.fps
        bufs = [np.empty(r.width * r.height * 3 // 2, np.uint8) for _ in range(2)]
        t0 = time.monotonic()
        n = 0
        mouth = (0.0, 0.5)
        while not self._stop.is_set():
            deadline = t0 + n * period
            wait = deadline - time.monotonic()
            if wait > 0:
                if self._stop.wait(wait):
                    break
            elif wait < -period:  # late by more than a frame: skip to now, never burst
                late = math.floor(-wait / period)
                n += late
                stats.skipped += late
                deadline = t0 + n * period
            mouth = self.speech.mouth_at(deadline, mouth)
            c0 = time.perf_counter()
            buf, _ = r.render_i420(
                deadline - self._t_start, mouth[0], mouth[1], want_alpha=False, out=bufs[n % 2]
            )
            stats.render_ms.append((time.perf_counter() - c0) * 1000)
            try:
                src.capture_frame(
                    rtc.VideoFrame(r.width, r.height, rtc.VideoBufferType.I420, buf.data),
                    timestamp_us=int(deadline * 1_000_000),
                )
                stats.frames += 1
            except Exception:
                if self._stop.is_set():
                    break
                stats.errors += 1
                if stats.errors == 1:
                    log.exception("capturing a video frame failed (later failures are counted)")
            n += 1


def _seed(avatar_id: str) -> int:
    return zlib.crc32(avatar_id.encode()) & 0xFFFF


def renderer_for(
    avatar_id: str = "default",
    width: int = 1280,
    height: int = 720,
    fps: float = 30.0,
    noise: float = PUBLISHED_NOISE,
) -> AvatarRenderer:
    """A renderer with ``avatar_id``'s look. Its layers take about a second to draw the first
    time; later renderers of the same look, size and noise in this process share them."""
    return AvatarRenderer(width, height, fps, noise=noise, seed=_seed(avatar_id))


class LocalProvider:
    """Provider ``local``: starts a :class:`LocalAvatar`.

    ``quality`` picks the size (high 1280x720, medium 960x540, low 640x360); options
    ``width``, ``height``, ``fps``, ``noise`` (sensor noise, levels), ``rate`` (espeak-ng
    words per minute) and ``name`` override.
    """

    name = "local"
    OPTIONS = frozenset({"width", "height", "fps", "noise", "rate", "name", "composited_by"})

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str = "default",
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        settings: Any = None,  # the built-in avatar needs no credentials
        **options: Any,
    ) -> LocalAvatar:
        if quality not in QUALITIES:
            raise InvalidInput(f"quality must be one of {', '.join(QUALITIES)}", field="quality")
        unknown = sorted(set(options) - self.OPTIONS)
        if unknown:
            raise InvalidInput(
                f"unknown option(s) for the local avatar: {', '.join(unknown)}", field=unknown[0]
            )
        w, h = QUALITIES[quality]
        return await LocalAvatar.start(
            target,
            identity=identity,
            voice=voice,
            avatar_id=avatar_id or "default",
            width=options.get("width", w),
            height=options.get("height", h),
            fps=options.get("fps", 30.0),
            noise=options.get("noise", PUBLISHED_NOISE),
            rate=options.get("rate"),
            name=options.get("name"),
            composited_by=options.get("composited_by"),
        )
