"""Fixtures for the avatar tests: a green-screen clip made in code, a recording subscriber."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from livekit import rtc

from greenroom.avatars import STATE_ATTRIBUTE
from greenroom.avatars.local import AvatarRenderer
from greenroom.livekit_server import LiveKitServer


def write_green_clip(
    path: Path, *, seconds: float = 2.0, fps: int = 15, size: tuple[int, int] = (320, 180)
) -> Path:
    """Render the built-in presenter into an MP4 (MPEG-4 video + AAC 440 Hz tone)."""
    w, h = size
    r = AvatarRenderer(w, h, fps)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.bit_rate = 1_000_000
        aus = c.add_stream("aac", rate=48000)
        aus.layout = "mono"
        n_frames = int(seconds * fps)
        for i in range(n_frames):
            rgb, _ = r.render(i / fps, mouth=0.5 * (1 + np.sin(i / 3)))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for p in vs.encode(frame):
                c.mux(p)
        t = np.arange(int(seconds * 48000)) / 48000
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for k in range(0, len(tone), 1024):
            chunk = tone[k : k + 1024]
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate = 48000
            af.pts = k
            af.time_base = Fraction(1, 48000)
            for p in aus.encode(af):
                c.mux(p)
        for s in (vs, aus):
            for p in s.encode(None):
                c.mux(p)
    return path


@pytest.fixture(scope="session")
def green_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 320x180, 15 fps green-screen clip with a 440 Hz tone."""
    return write_green_clip(tmp_path_factory.mktemp("clips") / "presenter.mp4")


@dataclass
class VideoSample:
    """What a subscriber saw in one received frame."""

    t: float  # arrival, time.monotonic()
    width: int
    height: int
    border_green: bool
    mouth_dark: float  # share of the mouth region darker than Y=70 (the open mouth's inside)


@dataclass
class Subscriber:
    """A separate rtc participant that subscribes to one avatar and records what arrives."""

    room: rtc.Room
    mouth: tuple[int, int, int, int] | None = None
    video: list[VideoSample] = field(default_factory=list)
    audio: list[tuple[float, float]] = field(default_factory=list)  # (arrival, RMS per 10 ms)
    states: list[tuple[float, str]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def fps(self, start: float, end: float) -> float:
        return sum(1 for v in self.video if start <= v.t < end) / (end - start)

    async def wait_video(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.video:
            assert time.monotonic() < deadline, "no video frame reached the subscriber"
            await asyncio.sleep(0.05)

    async def wait_state(self, state: str, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            hits = [t for t, s in self.states if s == state]
            if hits:
                return hits[-1]
            assert time.monotonic() < deadline, f"state {state!r} never seen: {self.states}"
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.room.disconnect()


def _border_green(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> bool:
    """True when the frame's border is screen green (low U and V, as #00B140 is).

    The border is the top row, both side columns and the bottom corners: the presenter's
    shoulders are cut by the bottom edge, as in any head-and-shoulders shot.
    """
    k = u.shape[1] // 6
    ring_u = np.concatenate([u[0], u[:, 0], u[:, -1], u[-1, :k], u[-1, -k:]])
    ring_v = np.concatenate([v[0], v[:, 0], v[:, -1], v[-1, :k], v[-1, -k:]])
    # chroma green: U about 105, V about 60 (grey would be 128/128); allow a few odd pixels
    return bool((ring_v > 95).mean() < 0.05 and (ring_u > 122).mean() < 0.05)


async def subscribe(livekit: LiveKitServer, room: str, avatar_identity: str) -> Subscriber:
    """Join ``room`` as a viewer and record the avatar's video, audio and state attribute."""
    sub = Subscriber(rtc.Room())

    async def video(track: rtc.Track) -> None:
        # unbounded queue: a busy test process delays frames but never drops them
        async for ev in rtc.VideoStream(track, capacity=0, format=rtc.VideoBufferType.I420):
            f = ev.frame
            w, h = f.width, f.height
            buf = np.frombuffer(f.data, np.uint8)
            y = buf[: w * h].reshape(h, w)
            u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
            v = buf[w * h * 5 // 4 : w * h * 3 // 2].reshape(h // 2, w // 2)
            dark = 0.0
            if sub.mouth is not None:
                y0, y1, x0, x1 = sub.mouth
                dark = float((y[y0:y1, x0:x1] < 70).mean())
            sub.video.append(VideoSample(time.monotonic(), w, h, _border_green(y, u, v), dark))

    async def audio(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1, frame_size_ms=10)
        async for ev in stream:
            x = np.frombuffer(ev.frame.data, np.int16).astype(np.float32)
            sub.audio.append((time.monotonic(), float(np.sqrt(np.mean(x * x)))))

    def on_track(track: rtc.Track, _pub: object, p: rtc.RemoteParticipant) -> None:
        if p.identity != avatar_identity:
            return
        run = video if track.kind == rtc.TrackKind.KIND_VIDEO else audio
        sub.tasks.append(asyncio.ensure_future(run(track)))

    def on_attrs(changed: dict[str, str], p: rtc.Participant) -> None:
        if p.identity == avatar_identity and STATE_ATTRIBUTE in changed:
            sub.states.append((time.monotonic(), changed[STATE_ATTRIBUTE]))

    def on_join(p: rtc.RemoteParticipant) -> None:
        if p.identity == avatar_identity and STATE_ATTRIBUTE in p.attributes:
            sub.states.append((time.monotonic(), p.attributes[STATE_ATTRIBUTE]))

    sub.room.on("track_subscribed", on_track)
    sub.room.on("participant_attributes_changed", on_attrs)
    sub.room.on("participant_connected", on_join)
    await sub.room.connect(livekit.url, livekit.token(f"viewer-{avatar_identity}", room))
    for p in sub.room.remote_participants.values():
        on_join(p)
    return sub


@pytest.fixture
def subscriber(livekit: LiveKitServer) -> Callable[[str, str], Awaitable[Subscriber]]:
    """``await subscriber(room, avatar_identity)`` -> a recording :class:`Subscriber`."""

    async def make(room: str, identity: str) -> Subscriber:
        return await subscribe(livekit, room, identity)

    return make
