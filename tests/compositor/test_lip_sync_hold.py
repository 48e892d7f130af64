"""The picture waits for a voice that reaches the compositor later than it does: the lag
read from the receiver's jitter buffers, and the frame loop holding frames by that lag."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prometheus_client import generate_latest

from greenroom.compositor import REGISTRY, Compositor
from greenroom.compositor.lip_sync import BufferTotals, ReceiveLag
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.synthetic import SKIN

from .conftest import FIRST_FRAME, Target, Viewer, center_is, one_layer

VOICE_LAG = "greenroom_compositor_voice_lag_seconds"


def _lag(max_s: float = 0.12) -> ReceiveLag:
    return ReceiveLag(lambda: (None, None), max_s)


def _feed(lag: ReceiveLag, audio_ms: float, video_ms: float, windows: int) -> None:
    """``windows`` readings in which each audio sample waited ``audio_ms`` and each video
    frame ``video_ms`` (48 000 samples and 30 frames a second)."""
    a = v = BufferTotals(0.0, 0)
    for _ in range(windows + 1):
        lag.update(a, v)
        a = BufferTotals(a.delay_s + 96_000 * audio_ms / 1000, a.emitted + 96_000)
        v = BufferTotals(v.delay_s + 60 * video_ms / 1000, v.emitted + 60)


@pytest.mark.unit
def test_lag_is_what_the_audio_buffer_holds_beyond_the_video_buffer() -> None:
    stats = SessionStats("unit-lag", "avatar-l")
    lag = ReceiveLag(lambda: (None, None), 0.12, stats)
    _feed(lag, audio_ms=100, video_ms=60, windows=8)
    assert lag.seconds == pytest.approx(0.040, abs=0.001)
    assert (lag.audio_ms, lag.video_ms) == (pytest.approx(100), pytest.approx(60))
    m = stats.snapshot(0.0)  # what metrics() and the stats line report
    assert m["voice_lag_ms"] == pytest.approx(40, abs=1)
    assert m["receive_buffer_ms"] == {"audio": pytest.approx(100), "video": pytest.approx(60)}
    text = generate_latest(REGISTRY).decode()
    line = next(x for x in text.splitlines() if x.startswith(VOICE_LAG) and "unit-lag" in x)
    assert float(line.split()[-1]) == pytest.approx(0.040, abs=0.001)
    stats.close()
    assert "unit-lag" not in generate_latest(REGISTRY).decode()


@pytest.mark.unit
def test_lag_follows_in_steps_and_stays_within_its_bounds() -> None:
    lag = _lag(max_s=0.05)
    _feed(lag, audio_ms=100, video_ms=60, windows=1)
    assert 0 < lag.seconds < 0.040  # one reading moves it part of the way
    _feed(lag, audio_ms=400, video_ms=60, windows=10)
    assert lag.seconds == pytest.approx(0.05, abs=0.001)  # capped
    _feed(lag, audio_ms=30, video_ms=70, windows=10)
    assert lag.seconds == pytest.approx(0.0, abs=0.001)  # video held longer: no hold


@pytest.mark.unit
def test_lag_resets_when_a_track_goes_and_ignores_a_new_receiver() -> None:
    lag = _lag()
    _feed(lag, audio_ms=100, video_ms=60, windows=8)
    lag.update(BufferTotals(0.5, 100), BufferTotals(0.1, 5))  # counters went back
    assert lag.seconds == pytest.approx(0.040, abs=0.001)
    lag.update(None, BufferTotals(0.2, 10))
    assert lag.seconds == 0.0 and lag.audio_ms is None
    assert ReceiveLag(lambda: (None, None), 0.0).seconds == 0.0


@pytest.mark.livekit
async def test_frames_wait_for_a_lagging_voice_in_order_and_stop_waiting_after(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    """With the voice 80 ms behind at our receiver, every composited frame goes to the
    encoder 80 ms or more after it came in, still in order, and the voice is given that much
    less delay; when the lag is gone, frames go out at once again."""
    await synthetic_avatar("avatar-h", motion=False, flash=False)
    comp = await Compositor.start(target, "avatar-h", "#0044ff", one_layer())
    loop = asyncio.get_running_loop()

    async def until(check, what: str) -> None:
        deadline = loop.time() + 60
        while not check(comp.metrics()):
            assert loop.time() < deadline, (what, comp.metrics())
            await asyncio.sleep(0.2)

    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(comp.identity, center_is(SKIN))
        await comp._voice_lag.pause()  # no readings of the receiver: the figure stays put
        comp._voice_lag.seconds = 0.08  # what ReceiveLag finds when audio waits 80 ms longer
        await until(lambda m: m["latency_ms_p50"] >= 80, "frames held by the lag")
        await until(
            lambda m: (
                m["audio_delay_ms"] is not None and m["audio_delay_ms"] < m["latency_ms_p50"] - 50
            ),
            "the voice given less delay",
        )
        stamps, last = [], 0.0
        for _ in range(15):  # what the viewer gets comes in capture order
            f = await viewer.frame(comp.identity, timeout=30, after=last)
            stamps.append(f.user_timestamp)
            last = f.received
        assert all(b > a for a, b in itertools.pairwise(stamps)), stamps
        assert center_is(SKIN)(f)

        comp._voice_lag.seconds = 0.0
        await until(lambda m: m["latency_ms_p50"] < 60, "frames sent at once again")
        assert not comp.closed
    finally:
        await comp.aclose()
