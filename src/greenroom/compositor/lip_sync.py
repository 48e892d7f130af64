"""How much later the compositor's own receiver hands over the avatar's voice than its picture.

The room's playout delay (docs/compositor.md, "Lip-sync") makes every receiver hold video at
least ``min_playout_delay``, which matches the audio jitter buffer of a quiet machine. Under
load the audio buffer (NetEq) grows with the jitter it sees, 85-104 ms with two sessions on
two cores, while the video stays near the room's minimum: the voice then reaches the
compositor 25-45 ms after the picture it belongs to, and no fixed room setting follows that.

:class:`ReceiveLag` reads the receiver's statistics of the avatar's two tracks every
``REFRESH`` seconds: the mean time a sample of audio and a frame of video spent in their
jitter buffers over that window. Their difference, smoothed and bounded, is the lag. The
frame loop then hands no composited frame to the encoder before ``received + lag``, and the
audio re-timer gives the voice that much less delay, so both leave together again.
Greenroom's viewer page does the same for its own receiver (``web/src/lib/lip_sync.ts``):
there the answer is a longer video playout delay, not held frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from livekit import rtc

from greenroom.compositor.stats import SessionStats
from greenroom.compositor.video import receiver_stats

REFRESH = 2.0  # s between readings of the receiver's statistics
SMOOTH = 0.5  # weight of a new reading in the running lag
PAUSE_WAIT = 2.0  # s to wait for a reading in flight when the connection goes


@dataclass(frozen=True)
class BufferTotals:
    """A receiver's cumulative jitter-buffer figures (WebRTC ``inbound-rtp``)."""

    delay_s: float  # sum over everything emitted of the time it spent in the buffer
    emitted: int  # samples (audio) or frames (video) emitted

    def mean_ms_since(self, before: BufferTotals) -> float | None:
        """Mean buffering (ms) of what was emitted between ``before`` and now."""
        n = self.emitted - before.emitted
        if n <= 0 or self.delay_s < before.delay_s:
            return None  # nothing emitted, or a new receiver (the counters went back)
        return 1000 * (self.delay_s - before.delay_s) / n


async def buffer_totals(track: rtc.Track | None) -> BufferTotals | None:
    """The jitter-buffer totals of a remote track's receiver, or None."""
    # no timeout: a request given up on would still be in flight when the room goes
    rtp = None if track is None else await receiver_stats(track)
    if rtp is None:
        return None
    return BufferTotals(rtp.inbound.jitter_buffer_delay, rtp.inbound.jitter_buffer_emitted_count)


class ReceiveLag:
    """The running lag (s) of the avatar's voice behind its picture at our receiver.

    ``tracks()`` returns the avatar's remote (audio, video) tracks, either None while absent.
    ``max_s`` bounds the lag (0: always 0, the hold is off). Each reading goes to ``stats``
    (metrics ``voice_lag_ms``, ``receive_buffer_ms``) when given.
    """

    def __init__(
        self,
        tracks: Callable[[], tuple[rtc.Track | None, rtc.Track | None]],
        max_s: float,
        stats: SessionStats | None = None,
    ) -> None:
        self._tracks = tracks
        self._max_s = max_s
        self._stats = stats
        self.seconds = 0.0
        self.audio_ms: float | None = None  # last window's mean buffering, for metrics
        self.video_ms: float | None = None
        self._before: tuple[BufferTotals, BufferTotals] | None = None
        self._paused = True  # until the first connection
        self._reading: asyncio.Future[None] | None = None

    def update(self, audio: BufferTotals | None, video: BufferTotals | None) -> None:
        """Take one reading; without both tracks the lag falls back to 0."""
        self._take(audio, video)
        if self._stats is not None:
            self._stats.voice_lag(self.seconds, self.audio_ms, self.video_ms)

    def _take(self, audio: BufferTotals | None, video: BufferTotals | None) -> None:
        if audio is None or video is None:
            self._before, self.seconds = None, 0.0
            self.audio_ms = self.video_ms = None
            return
        before, self._before = self._before, (audio, video)
        if before is None:
            return
        a, v = audio.mean_ms_since(before[0]), video.mean_ms_since(before[1])
        if a is None or v is None:
            return
        self.audio_ms, self.video_ms = a, v
        lag = min(max((a - v) / 1000, 0.0), self._max_s)
        self.seconds += SMOOTH * (lag - self.seconds)

    async def run(self) -> None:
        if self._max_s <= 0:
            return
        while True:
            await asyncio.sleep(REFRESH)
            if self._paused:
                continue
            # the SDK's statistics request runs on in the SDK when the task awaiting it is
            # cancelled; ``pause`` waits for it, so none is in flight while the room goes
            self._reading = asyncio.ensure_future(self._read(*self._tracks()))
            await asyncio.shield(self._reading)

    async def _read(self, audio: rtc.Track | None, video: rtc.Track | None) -> None:
        self.update(await buffer_totals(audio), await buffer_totals(video))

    async def pause(self) -> None:
        """Stop reading (the connection is about to go) and let a reading in flight end."""
        self._paused = True
        reading = self._reading
        if reading is not None and not reading.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(reading), PAUSE_WAIT)

    def resume(self) -> None:
        """Read again (a new connection: the receivers and their counters are new)."""
        self._paused, self._before = False, None
