"""A synthetic green-screen avatar with known alpha, for tests, benchmarks and diagnostics.

It publishes a camera track: a disc (skin tone, anti-aliased edge) moving on a #00B140
screen, each frame tagged with its capture time (``FrameMetadata.user_timestamp``, wall
clock µs), and a microphone track. Once a second the disc flashes white for a few
frames while the microphone plays a short 1 kHz beep at the same instant (silence
otherwise), so a viewer can measure audio/video offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc

from greenroom.keying.frame import rgb_to_yuv
from greenroom.keying.params import DEFAULT_KEY
from greenroom.tokens import agent_token

GREEN = DEFAULT_KEY  # the screen: #00B140
SKIN = (224, 150, 110)
FLASH = (255, 255, 255)
FLASH_FRAMES = 3
BEEP_S = 0.06
#: audio more than this far behind the wall clock skips ahead (see SyntheticAvatar._audio)
AUDIO_SLACK_S = 0.02


@dataclass
class DiscScene:
    """Where the disc is at time ``t`` and the exact alpha it has."""

    width: int = 1280
    height: int = 720
    radius: float = 0.22  # of the height
    motion: bool = True
    period: float = 4.0

    def center(self, t: float) -> tuple[float, float]:
        cx = self.width / 2
        if self.motion:
            cx += 0.25 * self.width * math.sin(2 * math.pi * t / self.period)
        return cx, self.height / 2

    def alpha(self, t: float, scale: int = 1) -> np.ndarray:
        """True alpha (H/scale, W/scale) float32 in [0, 1] at time ``t``."""
        cx, cy = self.center(t)
        r = self.radius * self.height
        ys = (np.arange(self.height // scale, dtype=np.float32) + 0.5) * scale
        xs = (np.arange(self.width // scale, dtype=np.float32) + 0.5) * scale
        d = np.sqrt((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2)
        return np.clip(r - d + 0.5 * scale, 0.0, scale) / scale

    def render_i420(self, t: float, color: tuple[int, int, int] = SKIN) -> bytes:
        """One I420 frame: the disc over green, blended by the true alpha."""
        gy, gu, gv = rgb_to_yuv(GREEN)
        fy, fu, fv = rgb_to_yuv(color)
        a = self.alpha(t)
        y = np.rint(gy + (fy - gy) * a).astype(np.uint8)
        a2 = self.alpha(t, scale=2)
        u = np.rint(gu + (fu - gu) * a2).astype(np.uint8)
        v = np.rint(gv + (fv - gv) * a2).astype(np.uint8)
        planes: bytes = y.tobytes() + u.tobytes() + v.tobytes()
        return planes


@dataclass
class SyntheticAvatar:
    """Publishes the disc scene into a room as participant ``identity`` (kind agent)."""

    scene: DiscScene = field(default_factory=DiscScene)
    fps: float = 30.0
    audio: bool = True
    flash: bool = True
    room: rtc.Room = field(default_factory=rtc.Room)
    frames_sent: int = 0
    #: while True the camera stays published but sends nothing (a stalled sender)
    video_paused: bool = False
    flash_times_us: list[int] = field(default_factory=list)
    #: the beep starts this many seconds after its flash (a known offset, to check probes)
    beep_shift: float = 0.0
    #: wall-clock µs at which each beep's first chunk was queued into the audio source
    beep_times_us: list[int] = field(default_factory=list)
    _capture_t: dict[int, float] = field(default_factory=dict)  # capture µs -> scene time
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _t0: float = 0.0

    async def start(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        room: str,
        identity: str,
        *,
        token: str | None = None,
    ) -> SyntheticAvatar:
        """Join as ``identity`` with an agent token (or ``token``, e.g. to play an impostor)."""
        token = token or agent_token(api_key, api_secret, room=room, identity=identity)
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
        src = rtc.VideoSource(self.scene.width, self.scene.height)
        track = rtc.LocalVideoTrack.create_video_track("camera", src)
        await self.room.local_participant.publish_track(
            track,
            rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA,
                simulcast=False,
                video_encoding=rtc.VideoEncoding(max_bitrate=3_000_000, max_framerate=self.fps),
                frame_metadata_features=[rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP],
            ),
        )
        self._t0 = time.monotonic()
        self._tasks.append(asyncio.create_task(self._video(src)))
        if self.audio:
            asrc = rtc.AudioSource(48_000, 1, queue_size_ms=30)
            atrack = rtc.LocalAudioTrack.create_audio_track("microphone", asrc)
            await self.room.local_participant.publish_track(
                atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            )
            self._tasks.append(asyncio.create_task(self._audio(asrc)))
        return self

    def time_of(self, capture_us: int) -> float:
        """Scene time of the frame captured at wall-clock ``capture_us``."""
        return self._capture_t[capture_us]

    async def _video(self, src: rtc.VideoSource) -> None:
        interval = 1.0 / self.fps
        per_second = round(self.fps)
        i = 0
        while True:
            if self.video_paused:  # the clock runs on, so no burst when it resumes
                i += 1
                await asyncio.sleep(max(self._t0 + i * interval - time.monotonic(), 0))
                continue
            t = i * interval
            flashing = self.flash and i % per_second < FLASH_FRAMES and i >= per_second
            data = self.scene.render_i420(t, FLASH if flashing else SKIN)
            now_us = time.time_ns() // 1000
            if flashing and i % per_second == 0:
                self.flash_times_us.append(now_us)
            self._capture_t[now_us] = t
            if len(self._capture_t) > 600:
                self._capture_t.pop(next(iter(self._capture_t)))
            frame = rtc.VideoFrame(
                self.scene.width, self.scene.height, rtc.VideoBufferType.I420, data
            )
            src.capture_frame(
                frame, timestamp_us=now_us, metadata=rtc.FrameMetadata(user_timestamp=now_us)
            )
            self.frames_sent += 1
            i += 1
            delay = self._t0 + i * interval - time.monotonic()
            await asyncio.sleep(max(delay, 0))

    async def _audio(self, src: rtc.AudioSource) -> None:
        sr, n = 48_000, 480
        tone = (0.6 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)).astype(np.int16)
        silence = np.zeros(n, np.int16)
        k, loud = 0, False
        while True:
            t = k * n / sr  # audio clock, seconds since start
            frac = (t - self.beep_shift) % 1.0
            was_loud = loud
            loud = self.flash and t - self.beep_shift >= 1.0 and frac < BEEP_S
            if loud:
                off = int(frac * sr)
                chunk = tone[off : off + n]
            else:
                chunk = silence
            frame = rtc.AudioFrame(chunk.tobytes(), sr, 1, n)
            delay = self._t0 + t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await src.capture_frame(frame)
            if loud and not was_loud:
                self.beep_times_us.append(time.time_ns() // 1000)
            k += 1
            # the source plays silence while it waits for us, and never plays faster than
            # real time: audio that fell behind the wall clock (the microphone published
            # after the camera, a stalled loop) would stay behind for good. Skip ahead so
            # each beep keeps its flash's instant.
            behind = time.monotonic() - (self._t0 + k * n / sr)
            if behind > AUDIO_SLACK_S:
                k += int(behind * sr) // n

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self.room.disconnect()
