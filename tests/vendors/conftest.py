"""Vendor test helpers: a room target on the session's LiveKit server, an emulator config, and
a viewer of composited frames. Emulators are served over real loopback HTTP (``serve``), since
the LITE WebSocket needs a socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve  # noqa: F401  (re-exported for the tests)
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import viewer_token


@pytest.fixture
def target(livekit: LiveKitServer, room_name: str) -> RoomTarget:
    return RoomTarget(livekit.url, livekit.api_key, livekit.api_secret, room_name)


@pytest.fixture
def emu_config(livekit: LiveKitServer) -> EmulatorConfig:
    return EmulatorConfig(
        livekit=LiveKitAccess(livekit.url, livekit.api_key, livekit.api_secret), api_key="dev"
    )


@dataclass
class Viewer:
    """A subscribe-only participant that keeps the newest frame of every video track."""

    room: rtc.Room = field(default_factory=rtc.Room)
    latest: dict[str, np.ndarray] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)
    audio_from: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def join(self, target: RoomTarget, identity: str = "viewer") -> Viewer:
        @self.room.on("track_subscribed")
        def _on(track: rtc.Track, _pub, p: rtc.RemoteParticipant) -> None:
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self._tasks.append(asyncio.create_task(self._drain(track, p.identity)))
            else:
                self.audio_from.add(p.identity)

        token = viewer_token(target.api_key, target.api_secret, room=target.room, identity=identity)
        await self.room.connect(target.url, token, rtc.RoomOptions(auto_subscribe=True))
        return self

    async def _drain(self, track: rtc.Track, sender: str) -> None:
        async for ev in rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.RGB24):
            f = ev.frame
            self.latest[sender] = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
            self.stamps[sender] = time.monotonic()

    async def frame(self, sender: str, timeout: float = 30.0, after: float = 0.0) -> np.ndarray:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sender in self.latest and self.stamps[sender] > after:
                return self.latest[sender]
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"no frame from {sender!r} within {timeout} s (have {list(self.latest)})"
        )

    def identities(self) -> set[str]:
        return {p.identity for p in self.room.remote_participants.values()}

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.room.disconnect()


@pytest.fixture
async def viewer(target: RoomTarget) -> AsyncIterator[Viewer]:
    v = await Viewer().join(target)
    yield v
    await v.aclose()


def corner_rgb(rgb: np.ndarray) -> np.ndarray:
    """Mean colour of the top-left patch (background in every avatar frame)."""
    h, w = rgb.shape[:2]
    return rgb[h // 50 : h // 5, w // 100 : w // 8].reshape(-1, 3).mean(axis=0)


def near(rgb: np.ndarray, want: tuple[int, int, int], tol: float = 30) -> bool:
    return bool(np.all(np.abs(rgb - np.array(want)) <= tol))


def avatar_visible(rgb: np.ndarray, background: tuple[int, int, int]) -> bool:
    """A good share of the centre differs clearly from the background: the avatar is there."""
    h, w, _ = rgb.shape
    centre = rgb[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(np.int16)
    return bool((np.abs(centre - np.array(background)).max(axis=2) > 60).mean() > 0.2)
