"""Video plumbing: a one-frame mailbox between the track and the keyer, and the output track.

The mailbox holds at most one frame. A frame that arrives while the previous one still
waits replaces it (counted as dropped, reason ``replaced``): when keying or encoding
cannot keep up, the output frame rate goes down and the latency stays put.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from livekit import rtc

from greenroom.compositor.options import TRACK_NAME, CompositorOptions
from greenroom.compositor.stats import SessionStats

T = TypeVar("T")

CLOSE_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 20.0  # s; a publication the server never confirms counts as failed


async def bounded(aw: Awaitable[object], timeout: float = CLOSE_TIMEOUT) -> None:
    """Await a teardown step, but never for ever (an SDK stream may never see its EOS).

    ``asyncio.wait_for`` is not enough: on timeout it cancels the step and then waits,
    without a bound, for the step to acknowledge the cancellation. Here a step that
    overruns is cancelled and left to finish on its own; its outcome is discarded.
    """
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:  # we are being cancelled ourselves: let it through
        task.cancel()
        task.add_done_callback(_discard)
        raise
    if not task.done():
        task.cancel()
    task.add_done_callback(_discard)  # runs at once when the step is already done


async def within(aw: Awaitable[T], timeout: float) -> T:
    """``asyncio.wait_for`` that never waits for a step it gave up on.

    ``wait_for`` cancels the step on timeout, and when its own task is cancelled, and then
    waits without a bound for the step to finish; an SDK call whose answer never comes
    (publishing into a room that is going away) then holds the caller for ever. And in
    Python 3.11 a step that finishes just as the caller is cancelled makes ``wait_for``
    return its result and drop the cancel, so a loop around it never ends. Here the step is
    cancelled and left to finish on its own, and a cancel is never lost.

    Raises:
        TimeoutError: the step did not finish within ``timeout`` seconds.
    """
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_discard)
        raise
    if not task.done():
        task.cancel()
        task.add_done_callback(_discard)
        raise TimeoutError(f"no answer within {timeout:g} s")
    return task.result()


async def receiver_stats(
    track: rtc.Track, timeout: float | None = None
) -> rtc.stats.RtcStats.InboundRtp | None:
    """The WebRTC ``inbound-rtp`` statistics of a remote track's receiver (the SDK's
    ``RtcStats.InboundRtp``: ``.received`` packet counters, ``.inbound`` decoder and jitter-buffer
    counters), or None when the receiver cannot say (a track being torn down has no
    statistics), or not within ``timeout`` seconds when one is given."""
    try:
        request = track.get_stats()
        stats = await (request if timeout is None else within(request, timeout))
    except Exception:
        return None
    for st in stats:
        if st.WhichOneof("stats") == "inbound_rtp":
            return st.inbound_rtp
    return None


def _discard(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished teardown step's outcome (a failed step has nothing to undo)."""
    if not task.cancelled():
        task.exception()


_CODECS = {
    "vp8": rtc.VideoCodec.VP8,
    "h264": rtc.VideoCodec.H264,
    "vp9": rtc.VideoCodec.VP9,
    "av1": rtc.VideoCodec.AV1,
}


@dataclass
class InFrame:
    """One avatar frame as received: I420 bytes, size, receive time, capture timestamp."""

    data: bytearray | memoryview  # the SDK's frame buffer, read once by the keyer
    width: int
    height: int
    received: float  # time.monotonic()
    capture_us: int | None  # the avatar's FrameMetadata.user_timestamp (wall clock, µs)


class LatestFrameSlot:
    """A mailbox of capacity one that keeps the newest frame."""

    def __init__(self, stats: SessionStats) -> None:
        self._frame: InFrame | None = None
        self._event = asyncio.Event()
        self._stats = stats

    def put(self, frame: InFrame) -> None:
        if self._frame is not None:
            self._stats.drop("replaced")
        self._frame = frame
        self._event.set()

    async def get(self, timeout: float) -> InFrame | None:
        """The newest frame, or None after ``timeout`` seconds without one."""
        if self._frame is None:
            try:  # within, not wait_for: a cancel that meets a new frame must not be lost
                await within(self._event.wait(), timeout)
            except TimeoutError:
                return None
        frame, self._frame = self._frame, None
        self._event.clear()
        return frame

    def clear(self) -> None:
        self._frame = None
        self._event.clear()


class FpsCap:
    """Admits frames at ``max_fps`` at most, evenly (60 fps in -> every 2nd frame).

    A token bucket that holds up to ``BURST`` frames: input at or under the cap is never
    dropped for jitter. With room for only 2, a receive path that stalled for two frame
    times and then delivered the frames together lost one (seen with two sessions on two
    cores: one ``rate`` drop in 600 frames); 5 lets the frames of a 100 ms stall through
    together with the next one.
    """

    BURST = 5.0

    def __init__(self, max_fps: float) -> None:
        self._rate = max_fps
        self._tokens = self.BURST
        self._last: float | None = None

    def admit(self, t: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.BURST, self._tokens + (t - self._last) * self._rate)
        self._last = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def publish_options(options: CompositorOptions, *, audio: bool = False) -> rtc.TrackPublishOptions:
    if audio:
        return rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    return rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        simulcast=options.simulcast,
        video_codec=_CODECS[options.video_codec],
        video_encoding=rtc.VideoEncoding(
            max_bitrate=options.max_bitrate, max_framerate=options.max_fps
        ),
        # under CPU pressure WebRTC should drop frames, not shrink the picture
        # the SDK's IntEnum is the proto's value; its stub names only the proto type
        degradation_preference=rtc.DegradationPreference.MAINTAIN_RESOLUTION,  # type: ignore[arg-type]
        frame_metadata_features=[
            rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP,
            rtc.FrameMetadataFeature.FMF_FRAME_ID,
        ],
    )


class VideoOutput:
    """The published ``greenroom`` track; re-created when the frame size changes."""

    def __init__(self, options: CompositorOptions) -> None:
        self._options = options
        self.source: rtc.VideoSource | None = None
        self.track: rtc.LocalVideoTrack | None = None
        self.sid: str | None = None
        self.size: tuple[int, int] | None = None
        self._frame_id = 0
        # capture runs on the keying thread: no frame goes into a source being closed
        self._capturing = threading.Lock()

    async def ensure(self, room: rtc.Room, width: int, height: int) -> None:
        """Publish a track of this size, replacing one of another size."""
        if self.size == (width, height) and self.sid is not None:
            return
        await self.unpublish(room)
        source = rtc.VideoSource(width, height)
        track = rtc.LocalVideoTrack.create_video_track(TRACK_NAME, source)
        publishing = room.local_participant.publish_track(track, publish_options(self._options))
        pub = await within(publishing, PUBLISH_TIMEOUT)
        with self._capturing:
            self.source, self.track, self.sid = source, track, pub.sid
            self.size = (width, height)

    async def unpublish(self, room: rtc.Room | None) -> None:
        with self._capturing:  # waits for a capture in flight (one encode at most)
            sid, source = self.sid, self.source
            self.source = self.track = self.sid = self.size = None
        if sid is not None and room is not None and room.isconnected():
            # the room may be going away; there is nothing to undo then
            await bounded(room.local_participant.unpublish_track(sid))
        if source is not None:
            await bounded(source.aclose())

    def capture(self, data: bytes | bytearray, width: int, height: int, user_us: int) -> None:
        """Hand one I420 frame to the encoder (synchronous; copies ``data``).

        Called on the keying thread (see ``FrameLoop._render_and_capture``), under a lock
        that ``unpublish`` also takes."""
        with self._capturing:
            source = self.source
            if source is None:
                return
            self._frame_id = (self._frame_id + 1) & 0xFFFFFFFF
            frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, data)
            meta = rtc.FrameMetadata(user_timestamp=user_us, frame_id=self._frame_id)
            source.capture_frame(frame, timestamp_us=time.time_ns() // 1000, metadata=meta)
