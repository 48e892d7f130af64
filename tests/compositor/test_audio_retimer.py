"""The re-timed voice catches up with the picture in pauses: frames that arrived in a burst
queue behind each other in a real ``AudioSource``, and a quiet frame behind schedule is
skipped while speech is played whole."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from livekit import rtc

from greenroom.compositor.audio import (
    CHANNELS,
    FRAME_MS,
    SAMPLE_RATE,
    AudioRetimer,
    is_quiet,
    new_audio_source,
)
from greenroom.compositor.stats import SessionStats

pytestmark = pytest.mark.unit

SAMPLES = SAMPLE_RATE * FRAME_MS // 1000


def _frame(amplitude: float) -> rtc.AudioFrame:
    t = np.arange(SAMPLES) / SAMPLE_RATE
    pcm = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, CHANNELS, SAMPLES)


def test_quiet_means_a_pause_not_soft_speech() -> None:
    assert is_quiet(_frame(0))
    assert is_quiet(_frame(40))  # about -58 dBFS: room noise
    assert not is_quiet(_frame(400))  # about -38 dBFS: soft speech
    assert not is_quiet(_frame(8000))


async def _burst_then_real_time(amplitude: float, frames: int = 25) -> SessionStats:
    """Three frames at once (a stalled event loop let them pile up), then one every 20 ms."""
    stats = SessionStats("s", "avatar")
    source = new_audio_source()
    retimer = AudioRetimer(source, lambda: 0.02, stats)
    queue: asyncio.Queue[tuple[float, rtc.AudioFrame]] = asyncio.Queue()
    pump = asyncio.create_task(retimer._pump(queue))
    try:
        now = time.monotonic()
        for _ in range(3):
            queue.put_nowait((now, _frame(amplitude)))
        for _ in range(frames - 3):
            await asyncio.sleep(FRAME_MS / 1000)
            queue.put_nowait((time.monotonic(), _frame(amplitude)))
        deadline = time.monotonic() + 10.0
        while stats.audio_frames + stats.audio_skipped < frames and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        await source.aclose()
    return stats


async def test_a_pause_behind_schedule_is_skipped_to_catch_up() -> None:
    stats = await _burst_then_real_time(amplitude=0)
    # the burst's second frame is 20 ms behind: only the catch-up rule skips it (the third,
    # 40 ms behind, goes by the 30 ms rule too)
    assert stats.audio_skipped >= 2
    assert stats.audio_frames + stats.audio_skipped == 25


async def test_speech_in_a_burst_is_played_not_cut() -> None:
    stats = await _burst_then_real_time(amplitude=8000)
    # the burst leaves the voice 40 ms behind: the one frame past 30 ms goes, and speech is
    # not skipped to catch up (a stalled event loop may cost a few more past 30 ms)
    assert stats.audio_frames >= 20
    assert stats.audio_frames + stats.audio_skipped == 25
