"""Helpers for compositor tests: a synthetic avatar, a viewer that picks the composited
track, and a room target for the session's LiveKit server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc

from greenroom.compositor import ATTR_ROLE, ROLE_COMPOSITOR, TRACK_NAME, CompositorOptions
from greenroom.compositor.synthetic import DiscScene, SyntheticAvatar
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import viewer_token

FIRST_FRAME = 180.0
"""Hang bound for a compositor's first frame: the keyer's kernels compile on first use
(minutes on a loaded machine when the numba cache is cold), before any frame goes out."""


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str
    api_secret: str
    room: str


@pytest.fixture
def target(livekit: LiveKitServer, room_name: str) -> Target:
    return Target(livekit.url, livekit.api_key, livekit.api_secret, room_name)


@dataclass
class ViewerFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    user_timestamp: int | None
    received: float  # time.monotonic()
    sender: str


@dataclass
class Viewer:
    """A plain rtc participant that subscribes only to compositor tracks named ``greenroom``."""

    room: rtc.Room = field(default_factory=rtc.Room)
    latest: dict[str, ViewerFrame] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    audio_tracks: dict[str, rtc.Track] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    async def join(self, target: Target, identity: str = "viewer") -> Viewer:
        @self.room.on("track_published")
        def _published(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            self._maybe_subscribe(pub, p)

        @self.room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                full_quality(pub)
                self._tasks.append(asyncio.create_task(self._drain(track, p.identity)))
            else:
                self.audio_tracks[p.identity] = track

        token = viewer_token(target.api_key, target.api_secret, room=target.room, identity=identity)
        await self.room.connect(target.url, token, rtc.RoomOptions(auto_subscribe=False))
        for p in self.room.remote_participants.values():
            for pub in p.track_publications.values():
                self._maybe_subscribe(pub, p)
        return self

    def _maybe_subscribe(self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        # how a viewer should pick: the compositor's attribute, not "the first agent"
        if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR and (
            pub.name == TRACK_NAME or pub.kind == rtc.TrackKind.KIND_AUDIO
        ):
            pub.set_subscribed(True)
            full_quality(pub)

    async def _drain(self, track: rtc.Track, sender: str) -> None:
        async for ev in rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.RGB24):
            f = ev.frame
            rgb = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
            ts = ev.metadata.user_timestamp if ev.metadata and ev.metadata.user_timestamp else None
            self.latest[sender] = ViewerFrame(rgb, ts, time.monotonic(), sender)
            self.counts[sender] = self.counts.get(sender, 0) + 1
            self._new.set()

    async def frame(self, sender: str, timeout: float = 60.0, after: float = 0.0) -> ViewerFrame:
        """The newest frame from ``sender`` received after monotonic time ``after``."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.latest.get(sender)
            if f is not None and f.received > after:
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame from {sender!r} within {timeout} s")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), min(left, 0.5))

    async def until(
        self,
        sender: str,
        predicate: Callable[[ViewerFrame], bool],
        timeout: float = 60.0,
    ) -> ViewerFrame:
        """The first frame from ``sender`` for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        last, seen, f = 0.0, 0, None
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                f = await self.frame(sender, timeout=deadline - time.monotonic(), after=last)
                last, seen = f.received, seen + 1
                if predicate(f):
                    return f
        detail = "" if f is None else f"; last {f.rgb.shape}, ts {f.user_timestamp}"
        raise TimeoutError(
            f"no matching frame from {sender!r} within {timeout} s ({seen} frames seen{detail})"
        )

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.room.disconnect()


def center_is(
    color: np.ndarray | tuple[int, int, int], tol: float = 30
) -> Callable[[ViewerFrame], bool]:
    """True when a 40x40 patch in the middle of the frame has ``color``."""
    color = np.asarray(color)

    def check(f: ViewerFrame) -> bool:
        h, w = f.rgb.shape[:2]
        patch = f.rgb[h // 2 - 20 : h // 2 + 20, w // 2 - 20 : w // 2 + 20].reshape(-1, 3)
        return float(np.abs(patch.astype(float).mean(0) - color).max()) < tol

    return check


def one_layer(**kw: object) -> CompositorOptions:
    """Options for tests that compare full-size pictures: one encoded layer.

    Asking the SFU for the top simulcast layer is not enough on a loaded machine: the
    publisher's bandwidth estimate drops and WebRTC turns the upper layers off, so every
    viewer gets 320x180. A single layer keeps its resolution (MAINTAIN_RESOLUTION).
    """
    return CompositorOptions(stats_interval=0, simulcast=False, **kw)  # type: ignore[arg-type]


def full_quality(pub: rtc.RemoteTrackPublication) -> None:
    """Ask the SFU for the top simulcast layer: tests compare full-size pictures, and on a
    loaded machine the SFU would otherwise settle on a small layer."""
    if pub.kind == rtc.TrackKind.KIND_VIDEO and pub.simulcasted:
        pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)


@pytest.fixture
async def viewer(target: Target) -> AsyncIterator[Viewer]:
    v = await Viewer().join(target)
    yield v
    await v.aclose()


AvatarFactory = Callable[..., Awaitable[SyntheticAvatar]]


@pytest.fixture
async def synthetic_avatar(target: Target) -> AsyncIterator[AvatarFactory]:
    """``await synthetic_avatar("identity", motion=False, ...)`` publishes a disc avatar."""
    started: list[SyntheticAvatar] = []

    async def start(identity: str, *, motion: bool = True, **kw: object) -> SyntheticAvatar:
        av = SyntheticAvatar(scene=DiscScene(motion=motion), **kw)  # type: ignore[arg-type]
        await av.start(target.url, target.api_key, target.api_secret, target.room, identity)
        started.append(av)
        return av

    yield start
    for av in started:
        with contextlib.suppress(Exception):
            await av.aclose()


def region_masks(alpha: np.ndarray, margin: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(background, foreground) masks at least ``margin`` px away from the alpha edge."""
    from numpy.lib.stride_tricks import sliding_window_view

    def erode(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, margin, constant_values=False)
        # separable min filter: rows then columns
        rows = sliding_window_view(padded, 2 * margin + 1, axis=1).all(axis=-1)
        return sliding_window_view(rows, 2 * margin + 1, axis=0).all(axis=-1)

    return erode(alpha <= 0.0), erode(alpha >= 1.0)
