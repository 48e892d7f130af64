"""Fixtures for the avatar tests: a green-screen clip made in code, a subscriber process."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from greenroom.avatars.local import AvatarRenderer
from greenroom.livekit_server import LiveKitServer

PROBE = Path(__file__).with_name("room_probe.py")


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
    """What the subscriber saw in one received frame."""

    t: float  # arrival, time.monotonic()
    width: int
    height: int
    border_green: bool
    mouth_dark: float  # share of the mouth region darker than Y=70 (the open mouth's inside)


@dataclass
class Recording:
    """Everything a :class:`Probe` received from one avatar."""

    video: list[VideoSample]
    audio: list[tuple[float, float]]  # (arrival, int16 RMS per 10 ms)
    states: list[tuple[float, str]]  # (arrival, greenroom.avatar.state)

    def fps(self, start: float, end: float) -> float:
        return sum(1 for v in self.video if start <= v.t < end) / (end - start)

    def seen(self, state: str, after: float = 0.0) -> float | None:
        """Arrival of the first ``state`` attribute at or after ``after``."""
        return next((t for t, s in self.states if s == state and t >= after), None)


class Probe:
    """A subscriber in another process (``room_probe.py``) recording one avatar's tracks."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(
        cls,
        livekit: LiveKitServer,
        room: str,
        identity: str,
        mouth: tuple[int, int, int, int] | None = None,
    ) -> Probe:
        token = livekit.token(f"probe-{identity}", room)
        args = [str(PROBE), livekit.url, token, identity, *(str(v) for v in mouth or ())]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdin=PIPE, stdout=PIPE, stderr=DEVNULL
        )
        probe = cls(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            await probe.kill()
            raise AssertionError(f"the subscriber did not get the avatar's tracks: {line!r}")
        return probe

    async def stop(self) -> Recording:
        """Leave the room and return what arrived."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = await asyncio.wait_for(self.proc.stdout.read(), 60)
        await self.proc.wait()
        data = json.loads(out)
        return Recording(
            [VideoSample(*v) for v in data["video"]],
            [tuple(a) for a in data["audio"]],
            [tuple(s) for s in data["states"]],
        )

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def probe(livekit: LiveKitServer) -> AsyncIterator[Callable[..., Awaitable[Probe]]]:
    """``await probe(room, avatar_identity, mouth_region)`` -> a running :class:`Probe`."""
    started: list[Probe] = []

    async def make(
        room: str, identity: str, mouth: tuple[int, int, int, int] | None = None
    ) -> Probe:
        p = await Probe.start(livekit, room, identity, mouth)
        started.append(p)
        return p

    yield make
    for p in started:
        await p.kill()
