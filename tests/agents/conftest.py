"""Helpers for the agents tests: a room target, the agent's own room (connected the way
LiveKit Agents connect: kind ``agent``, auto-subscribe on), and a viewer that watches what
LiveKit's frontends would: the compositor's ``greenroom`` track, at full quality."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.compositor import ATTR_ROLE, ROLE_COMPOSITOR, TRACK_NAME
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import viewer_token

AGENT = "agent"


@pytest.fixture
def target(livekit: LiveKitServer, room_name: str) -> RoomTarget:
    return RoomTarget(livekit.url, livekit.api_key, livekit.api_secret, room_name)


@pytest.fixture
async def agent_room(target: RoomTarget) -> AsyncIterator[rtc.Room]:
    """The agent's room, as ``ctx.connect()`` leaves it: kind agent, auto-subscribe on."""
    room = rtc.Room()
    await room.connect(target.url, target.agent_token(AGENT), rtc.RoomOptions(auto_subscribe=True))
    yield room
    await room.disconnect()


@dataclass
class Viewer:
    """Subscribes to the ``greenroom`` track of whoever carries ``greenroom.role=compositor``
    and keeps its newest frame (RGB)."""

    room: rtc.Room = field(default_factory=rtc.Room)
    latest: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def join(self, target: RoomTarget) -> Viewer:
        self.room.on("track_published", lambda pub, p: self._pick(pub, p))
        self.room.on("participant_attributes_changed", lambda _c, p: self._rescan(p))
        self.room.on("track_subscribed", self._subscribed)
        token = viewer_token(target.api_key, target.api_secret, room=target.room, identity="viewer")
        await self.room.connect(target.url, token, rtc.RoomOptions(auto_subscribe=False))
        for p in self.room.remote_participants.values():
            self._rescan(p)
        return self

    def _rescan(self, p: rtc.Participant) -> None:
        if isinstance(p, rtc.RemoteParticipant):
            for pub in p.track_publications.values():
                self._pick(pub, p)

    def _pick(self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR and pub.name == TRACK_NAME:
            if not pub.subscribed:
                pub.set_subscribed(True)
            if pub.simulcasted:  # the top layer: a loaded machine would settle on a small one
                pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)

    def _subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self._pick(pub, p)
            self._tasks.append(asyncio.create_task(self._drain(track, p.identity)))

    async def _drain(self, track: rtc.Track, sender: str) -> None:
        async for ev in rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.RGB24):
            f = ev.frame
            rgb = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
            self.latest[sender] = (time.monotonic(), rgb)

    async def until(
        self, sender: str, predicate: Callable[[np.ndarray], bool], timeout: float = 60.0
    ) -> np.ndarray:
        """The first frame from ``sender`` for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        seen, last = 0.0, None
        while time.monotonic() < deadline:
            got = self.latest.get(sender)
            if got is not None and got[0] > seen:
                seen, last = got
                if predicate(last):
                    return last
            await asyncio.sleep(0.05)
        what = "none" if last is None else f"{last.shape}, corner {corner(last).round()}"
        age = "-" if not seen else f"{time.monotonic() - seen:.1f} s old"
        raise TimeoutError(f"no matching frame from {sender!r} in {timeout} s (last {what}, {age})")

    def compositors(self) -> list[rtc.RemoteParticipant]:
        """Participants that say they are a compositor or publish a ``greenroom`` track."""
        return [
            p
            for p in self.room.remote_participants.values()
            if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR
            or any(pub.name == TRACK_NAME for pub in p.track_publications.values())
        ]

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.room.disconnect()


@pytest.fixture
async def viewer(target: RoomTarget) -> AsyncIterator[Viewer]:
    v = await Viewer().join(target)
    yield v
    await v.aclose()


def corner(rgb: np.ndarray) -> np.ndarray:
    """Mean colour of the top-left patch: screen, never avatar, in every avatar frame."""
    h, w = rgb.shape[:2]
    return rgb[h // 50 : h // 5, w // 100 : w // 8].reshape(-1, 3).mean(axis=0)


def is_background(want: tuple[int, int, int], tol: float = 25) -> Callable[[np.ndarray], bool]:
    """The corner shows ``want`` and the centre shows an avatar (not ``want``, not green)."""

    def check(rgb: np.ndarray) -> bool:
        if not np.all(np.abs(corner(rgb) - want) <= tol):
            return False
        h, w = rgb.shape[:2]
        centre = rgb[h // 3 : 2 * h // 3, 2 * w // 5 : 3 * w // 5].astype(np.int16)
        differs = (np.abs(centre - np.array(want)).max(axis=2) > 60).mean() > 0.3
        r, g, b = (centre[..., i] for i in range(3))
        green = ((g - np.maximum(r, b)) > 60).mean()
        return bool(differs and green < 0.02)

    return check


async def wait_for(get: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not get():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)
