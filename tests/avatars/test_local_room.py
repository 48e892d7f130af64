"""The built-in avatars in a real room, seen by a subscriber running in another process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import api

from greenroom.avatars import AvatarState, RoomTarget, get_provider
from greenroom.avatars.local import LocalAvatar
from greenroom.livekit_server import LiveKitServer

pytestmark = pytest.mark.livekit

MakeProbe = Callable[..., Awaitable[Any]]  # the ``probe`` fixture: -> conftest.Probe
SILENT_RMS = 30.0  # int16 RMS per 10 ms; espeak-ng speech is in the thousands
LONG_TEXT = (
    "This is the built-in avatar. It speaks with espeak-ng, and its mouth follows the "
    "loudness of its own voice. Now it goes on talking for a while, so that the test can "
    "interrupt it in the middle of a sentence and listen for the silence. " * 3
)


def _target(livekit: LiveKitServer, room: str) -> RoomTarget:
    return RoomTarget(livekit.url, livekit.api_key, livekit.api_secret, room)


async def test_local_avatar_publishes_720p_at_30fps_on_green(
    livekit: LiveKitServer, room_name: str, probe: MakeProbe
) -> None:
    avatar = await get_provider("local").start(
        _target(livekit, room_name), avatar_id="default", identity="presenter"
    )
    try:
        sub = await probe(room_name, "presenter")
        await asyncio.sleep(7.0)  # 1.5 s warm-up (encoder ramp, first key frame) + 5 s
        rec = await sub.stop()
    finally:
        await avatar.aclose()
    assert rec.video, "no video frame reached the subscriber"
    t0 = rec.video[0].t + 1.5
    window = [v for v in rec.video if t0 <= v.t < t0 + 5.0]
    fps = rec.fps(t0, t0 + 5.0)
    stats = avatar.video_stats
    assert 27.0 <= fps <= 33.0, (
        f"{fps:.1f} fps at the subscriber (30 ± 10% expected); publisher: "
        f"{stats.frames} frames, {stats.skipped} deadlines skipped"
    )
    assert {(v.width, v.height) for v in window} == {(1280, 720)}
    assert all(v.border_green for v in window), "a frame's border is not screen green"
    assert rec.seen("idle") is not None
    assert avatar.state == AvatarState.STOPPED


async def test_speech_moves_the_mouth_and_interrupt_silences_it(
    livekit: LiveKitServer, room_name: str, probe: MakeProbe
) -> None:
    # 640x360: the 720p picture is the first test's; a lighter stream keeps a busy machine
    # from delaying what the subscriber sees
    avatar = await LocalAvatar.start(
        _target(livekit, room_name), identity="speaker", width=640, height=360
    )
    states: list[tuple[float, AvatarState]] = []
    avatar.on_state(lambda state: states.append((time.monotonic(), state)))
    try:
        sub = await probe(room_name, "speaker", avatar.renderer.mouth_region())
        await asyncio.sleep(2.5)  # warm-up, then 1 s of idle to look at
        t_say = time.monotonic()
        await avatar.say(LONG_TEXT)
        await asyncio.sleep(2.5)
        t_int = time.monotonic()
        await avatar.interrupt()
        await asyncio.sleep(1.5)
        rec = await sub.stop()
    finally:
        await avatar.aclose()

    # idle: silence and a closed, still mouth
    idle_audio = [r for t, r in rec.audio if t_say - 1.0 <= t < t_say]
    idle_video = [v.mouth_dark for v in rec.video if t_say - 1.0 <= v.t < t_say]
    assert idle_audio and max(idle_audio) < SILENT_RMS
    assert idle_video and max(idle_video) < 0.005

    # speaking: speech energy, and the mouth opens and moves
    t_speak = rec.seen("speaking", after=t_say)
    assert t_speak is not None, f"state 'speaking' never reached the subscriber: {rec.states}"
    speaking_audio = np.array([r for t, r in rec.audio if t_speak <= t < t_int])
    loud_s = np.sum(speaking_audio > 1000) / 100  # 10 ms frames
    assert loud_s > 0.5, f"only {loud_s:.2f} s of speech energy while speaking"
    dark = [v.mouth_dark for v in rec.video if t_speak <= v.t < t_int]
    assert max(dark) > 0.02, "the mouth never opened while speaking"
    assert np.std(dark) > 0.005, "the mouth did not move with the speech"

    # interrupt: when does the listener stop hearing speech? Audio already on its way
    # (encoder, network, jitter buffer) cannot be called back, so the audio path's delay,
    # measured the same way when the speech began (first speech frame leaving the avatar ->
    # first loud frame at the subscriber), is not counted against the avatar.
    t_first_sent = next(t for t, s in states if s == AvatarState.SPEAKING)
    t_first_heard = min(t for t, r in rec.audio if t >= t_say and r >= 1000)
    path_ms = (t_first_heard - t_first_sent) * 1000
    loud = [t for t, r in rec.audio if t >= t_int and r >= SILENT_RMS]
    last_ms = (max(loud) - t_int) * 1000 if loud else 0.0
    assert last_ms - path_ms < 200, (
        f"speech heard until {last_ms:.0f} ms after interrupt(); audio path {path_ms:.0f} ms"
    )
    assert rec.seen("idle", after=t_int) is not None
    late = [v.mouth_dark for v in rec.video if v.t >= t_int + 0.5]
    assert late and max(late) < 0.005, "the mouth stayed open after the interrupt"
    assert [s for _, s in states] == [AvatarState.SPEAKING, AvatarState.IDLE, AvatarState.STOPPED]


async def test_file_avatar_loops_a_clip_at_its_own_rate_with_sound(
    livekit: LiveKitServer, room_name: str, green_clip: Path, probe: MakeProbe
) -> None:
    avatar = await get_provider("file").start(
        _target(livekit, room_name), avatar_id=str(green_clip), identity="clip"
    )
    try:
        sub = await probe(room_name, "clip")
        await asyncio.sleep(5.0)  # 1 s warm-up + 4 s: the 2 s clip loops twice
        rec = await sub.stop()
        assert avatar.loops >= 1
        # the room goes away under the avatar: the session ends itself
        async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
        for _ in range(100):
            if avatar.state == AvatarState.STOPPED:
                break
            await asyncio.sleep(0.1)
        assert avatar.state == AvatarState.STOPPED
    finally:
        await avatar.aclose()
    t0 = rec.video[0].t + 1.0
    fps = rec.fps(t0, t0 + 4.0)
    window = [v for v in rec.video if t0 <= v.t < t0 + 4.0]
    assert 13.5 <= fps <= 16.5, (
        f"{fps:.1f} fps (the clip's 15 fps ± 10% expected); publisher: "
        f"{avatar.frames_published} frames, {avatar.frames_late} dropped late"
    )
    assert {(v.width, v.height) for v in window} == {(320, 180)}
    assert all(v.border_green for v in window)
    tone = np.array([r for t, r in rec.audio if t0 <= t < t0 + 4.0])
    assert np.median(tone) > 3000, "the clip's 440 Hz tone did not arrive"
