"""The camera-stall watchdog's decision (``AvatarTracks._next_frame``), with a stream that
stops handing over frames and a receiver whose counters the test sets.

On a real server (``test_resilience.py``) a camera that sends nothing is renewed and comes
back. The other stall seen when two sessions start at once (the receiver decodes, the SDK's
stream hands over nothing) cannot be provoked on demand, so its decision is checked here:
it is caught at the first check instead of after the full wait, and a stream that is merely
slow is not renewed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from greenroom.compositor import tracks as tracks_mod
from greenroom.compositor.audio import AudioOutput
from greenroom.compositor.options import CompositorOptions
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.tracks import AvatarTracks
from greenroom.compositor.video import LatestFrameSlot

pytestmark = pytest.mark.unit

FRAME = object()  # stands for an rtc.VideoFrameEvent


class Stream:
    """A camera stream that hands over ``FRAME`` once ``ready`` is set, or ends."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ended = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self.ended:
            raise StopAsyncIteration
        await self.ready.wait()
        return FRAME


@pytest.fixture
def watchdog(monkeypatch: pytest.MonkeyPatch) -> tuple[AvatarTracks, list[str]]:
    """Tracks with short waits, and a list of the receiver's answers given, in order."""
    monkeypatch.setattr(tracks_mod, "DECODE_CHECK", 0.05)
    monkeypatch.setattr(tracks_mod, "VIDEO_STALL", 0.3)
    monkeypatch.setattr(tracks_mod, "HANDOVER", 0.05)
    stats = SessionStats("stall", "a")
    t = AvatarTracks("a", CompositorOptions(), stats, LatestFrameSlot(stats), AudioOutput())
    return t, []


def receiver(
    monkeypatch: pytest.MonkeyPatch, asked: list[str], decoded: int, then: Any = None
) -> None:
    """The receiver decodes ``decoded`` frames per probe; ``then()`` runs after each."""

    async def receiving(_track: Any) -> tuple[int, int]:
        asked.append("probe")
        if then is not None:
            then()
        return decoded, 140 if decoded else 0

    monkeypatch.setattr(AvatarTracks, "_receiving", staticmethod(receiving))


async def test_decoded_frames_the_stream_never_hands_over_are_a_stall_at_the_first_check(
    watchdog: tuple[AvatarTracks, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="greenroom.compositor")
    t, asked = watchdog
    monkeypatch.setattr(tracks_mod, "VIDEO_STALL", 5.0)
    receiver(monkeypatch, asked, decoded=15)
    stream = Stream()
    # the stream would hand over a frame after 2 s: within the full wait, long after the check
    asyncio.get_running_loop().call_later(2.0, stream.ready.set)
    assert await t._next_frame(stream, None) is None  # type: ignore[arg-type]
    assert asked == ["probe"], "renewed at the first check, not after the full wait"
    msg = caplog.records[-1].getMessage()
    assert "decodes frames the stream does not hand over" in msg and "140 packets" in msg


async def test_a_receiver_that_decodes_nothing_gets_the_full_wait(
    watchdog: tuple[AvatarTracks, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="greenroom.compositor")
    t, asked = watchdog
    receiver(monkeypatch, asked, decoded=0)
    assert await t._next_frame(Stream(), None) is None  # type: ignore[arg-type]
    assert asked == ["probe", "probe"], "checked again after the full wait"
    assert "decodes nothing" in caplog.records[-1].getMessage()


async def test_a_stream_that_catches_up_is_not_renewed(
    watchdog: tuple[AvatarTracks, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    t, asked = watchdog
    stream = Stream()
    receiver(monkeypatch, asked, decoded=15, then=stream.ready.set)  # frames flow again
    assert await t._next_frame(stream, None) is FRAME  # type: ignore[arg-type]
    # and a camera that comes back during the full wait is read on as well
    asked.clear()
    stream = Stream()
    loop = asyncio.get_running_loop()
    receiver(monkeypatch, asked, decoded=0, then=lambda: loop.call_later(0.05, stream.ready.set))
    assert await t._next_frame(stream, None) is FRAME  # type: ignore[arg-type]
    assert asked == ["probe"]


async def test_a_stream_that_ends_is_a_stall(
    watchdog: tuple[AvatarTracks, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="greenroom.compositor")
    t, asked = watchdog
    receiver(monkeypatch, asked, decoded=15)
    stream = Stream()
    stream.ended = True
    assert await t._next_frame(stream, None) is None  # type: ignore[arg-type]
    assert "avatar video ended" in caplog.records[-1].getMessage()
