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


class Watchdog:
    """Tracks with short waits, a receiver whose answers the test sets, and the probes and
    warnings so far."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        self._monkeypatch, self._caplog = monkeypatch, caplog
        monkeypatch.setattr(tracks_mod, "DECODE_CHECK", 0.05)
        monkeypatch.setattr(tracks_mod, "VIDEO_STALL", 0.3)
        monkeypatch.setattr(tracks_mod, "HANDOVER", 0.05)
        caplog.set_level(logging.WARNING, logger="greenroom.compositor")
        stats = SessionStats("stall", "a")
        self.tracks = AvatarTracks(
            "a", CompositorOptions(), stats, LatestFrameSlot(stats), AudioOutput()
        )
        self.asked: list[str] = []

    def receiver(self, decoded: int, then: Any = None) -> None:
        """The receiver decodes ``decoded`` frames per probe; ``then()`` runs after each."""

        async def receiving(_track: Any) -> tuple[int, int]:
            self.asked.append("probe")
            if then is not None:
                then()
            return decoded, 140 if decoded else 0

        self._monkeypatch.setattr(AvatarTracks, "_receiving", staticmethod(receiving))

    async def next_frame(self, stream: Stream) -> Any:
        return await self.tracks._next_frame(stream, None)  # type: ignore[arg-type]

    def warning(self) -> str:
        return self._caplog.records[-1].getMessage()


@pytest.fixture
def watchdog(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Watchdog:
    return Watchdog(monkeypatch, caplog)


async def test_decoded_frames_the_stream_never_hands_over_are_a_stall_at_the_first_check(
    watchdog: Watchdog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracks_mod, "VIDEO_STALL", 5.0)
    watchdog.receiver(decoded=15)
    stream = Stream()
    # the stream would hand over a frame after 2 s: within the full wait, long after the check
    asyncio.get_running_loop().call_later(2.0, stream.ready.set)
    assert await watchdog.next_frame(stream) is None
    assert watchdog.asked == ["probe"], "renewed at the first check, not after the full wait"
    msg = watchdog.warning()
    assert "decodes frames the stream does not hand over" in msg and "140 packets" in msg


async def test_a_receiver_that_decodes_nothing_gets_the_full_wait(watchdog: Watchdog) -> None:
    watchdog.receiver(decoded=0)
    assert await watchdog.next_frame(Stream()) is None
    assert watchdog.asked == ["probe", "probe"], "checked again after the full wait"
    assert "decodes nothing" in watchdog.warning()


async def test_a_stream_that_catches_up_is_not_renewed(watchdog: Watchdog) -> None:
    stream = Stream()
    watchdog.receiver(decoded=15, then=stream.ready.set)  # frames flow again
    assert await watchdog.next_frame(stream) is FRAME
    # and a camera that comes back during the full wait is read on as well
    watchdog.asked.clear()
    stream = Stream()
    loop = asyncio.get_running_loop()
    watchdog.receiver(decoded=0, then=lambda: loop.call_later(0.05, stream.ready.set))
    assert await watchdog.next_frame(stream) is FRAME
    assert watchdog.asked == ["probe"]


async def test_a_stream_that_ends_is_a_stall(watchdog: Watchdog) -> None:
    watchdog.receiver(decoded=15)
    stream = Stream()
    stream.ended = True
    assert await watchdog.next_frame(stream) is None
    assert "avatar video ended" in watchdog.warning()
