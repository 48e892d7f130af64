"""Re-timed audio: the avatar's microphone, delayed by the video path's latency.

Viewers line audio and video up by the time each reaches our encoders, so audio that
skipped the keying step would lead the picture by the compositor's latency. Each 20 ms
frame is held until ``arrival + delay`` (delay = measured video-path latency, p50, read
again every ``DELAY_REFRESH`` seconds) and then handed to our ``AudioSource``.

The source plays its queue in real time, so frames that arrive in a burst (a busy event
loop) queue up behind each other, and that backlog stays: audio falls behind the picture by
up to ``_LATE``. A quiet frame (a pause in speech) that is more than ``CATCH_UP`` behind is
skipped, which clears the backlog without a cut anyone hears; any frame more than ``_LATE``
behind (the delay dropped) is skipped too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
from livekit import rtc

from greenroom.compositor.options import AUDIO_TRACK_NAME
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.video import PUBLISH_TIMEOUT, bounded, within

logger = logging.getLogger("greenroom.compositor")

SAMPLE_RATE = 48_000
CHANNELS = 1
#: 20 ms frames: each frame in and out is a round trip through the SDK (events, a request,
#: a callback), so half as many frames cost half the event loop's audio work.
FRAME_MS = 20
SOURCE_QUEUE_MS = 100
MAX_DELAY = 0.3
#: The video latency's p50 moves slowly; reading it for each of 100 audio frames a second
#: cost more of the event loop than the audio itself.
DELAY_REFRESH = 0.5
_LATE = 0.03
CATCH_UP = 0.005  # s behind schedule from which a quiet frame is skipped
QUIET_RMS = 64.0  # int16 RMS of a quiet frame (about -54 dBFS)
_QUEUE_FRAMES = 50  # 1 s of audio between reader and pump at most


def new_audio_source() -> rtc.AudioSource:
    return rtc.AudioSource(SAMPLE_RATE, CHANNELS, queue_size_ms=SOURCE_QUEUE_MS)


class AudioOutput:
    """The published ``greenroom-audio`` track of one connection."""

    def __init__(self) -> None:
        self.source: rtc.AudioSource | None = None
        self.sid: str | None = None

    async def publish(self, room: rtc.Room) -> None:
        """Publish a fresh track (a new connection needs its own source)."""
        self.source = new_audio_source()
        track = rtc.LocalAudioTrack.create_audio_track(AUDIO_TRACK_NAME, self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        publishing = room.local_participant.publish_track(track, options)
        pub = await within(publishing, PUBLISH_TIMEOUT)
        self.sid = pub.sid

    async def close(self, room: rtc.Room | None) -> None:
        """Unpublish (when the room is still there) and release the source."""
        source, sid = self.source, self.sid
        self.source = self.sid = None
        if sid is not None and room is not None and room.isconnected():
            await bounded(room.local_participant.unpublish_track(sid))
        if source is not None:
            await bounded(source.aclose())


def is_quiet(frame: rtc.AudioFrame) -> bool:
    """True when ``frame`` is silence or nearly (RMS under ``QUIET_RMS``)."""
    samples = np.frombuffer(frame.data, np.int16).astype(np.float32)
    return samples.size == 0 or float(np.sqrt(np.mean(samples * samples))) < QUIET_RMS


class AudioRetimer:
    """Copies one remote audio track into ``source`` with a delay that follows the video."""

    def __init__(
        self,
        source: rtc.AudioSource,
        delay_s: Callable[[], float],
        stats: SessionStats,
    ) -> None:
        self._source = source
        self._delay_s = delay_s
        self._stats = stats
        self._tasks: list[asyncio.Task[None]] = []
        self._stream: rtc.AudioStream | None = None

    def start(self, track: rtc.Track) -> None:
        self._stream = rtc.AudioStream(
            track,
            sample_rate=SAMPLE_RATE,
            num_channels=CHANNELS,
            frame_size_ms=FRAME_MS,
            capacity=_QUEUE_FRAMES,
        )
        queue: asyncio.Queue[tuple[float, rtc.AudioFrame]] = asyncio.Queue(_QUEUE_FRAMES)
        self._tasks = [
            asyncio.create_task(self._read(self._stream, queue), name="greenroom-audio-read"),
            asyncio.create_task(self._pump(queue), name="greenroom-audio-pump"),
        ]

    async def _read(
        self, stream: rtc.AudioStream, queue: asyncio.Queue[tuple[float, rtc.AudioFrame]]
    ) -> None:
        async for ev in stream:
            if queue.full():  # the pump is stuck: keep the newest audio
                queue.get_nowait()
            queue.put_nowait((time.monotonic(), ev.frame))

    async def _pump(self, queue: asyncio.Queue[tuple[float, rtc.AudioFrame]]) -> None:
        # The source plays its queue out in real time; ``play_end`` is when what we gave
        # it so far will have been played (our own clock: the SDK's estimate drifts).
        play_end = 0.0
        target, read_at = 0.0, -DELAY_REFRESH
        while True:
            arrival, frame = await queue.get()
            duration = frame.samples_per_channel / frame.sample_rate
            if arrival - read_at >= DELAY_REFRESH:
                target, read_at = min(max(self._delay_s(), 0.0), MAX_DELAY), arrival
            start = max(time.monotonic(), play_end)
            wait = arrival + target - start
            if wait > 0:
                await asyncio.sleep(wait)
                start = max(time.monotonic(), play_end)
            elif wait < -_LATE:
                self._stats.audio_skipped += 1
                continue  # the delay shrank: skip a frame instead of playing late forever
            if start - (arrival + target) > CATCH_UP and is_quiet(frame):
                self._stats.audio_skipped += 1
                continue  # a pause: catch up with the picture here
            await self._source.capture_frame(frame)
            play_end = start + duration
            delay = start - arrival
            self._stats.audio(delay * 1000, (target - delay) * 1000)

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            await bounded(t)
        self._tasks = []
        if self._stream is not None:
            await bounded(self._stream.aclose())
            self._stream = None
