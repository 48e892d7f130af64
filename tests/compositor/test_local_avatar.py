"""The built-in avatar (``LocalAvatar``) through the compositor to a viewer: its exact
alpha decides where the viewer must see the background, and its voice comes out of the
compositor's re-timed audio track."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.avatars.local import AvatarRenderer, LocalAvatar
from greenroom.compositor import AUDIO_TRACK_NAME, Compositor

from .conftest import FIRST_FRAME, Target, Viewer, one_layer, region_masks

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)


async def test_local_avatar_composited_for_viewer(target: Target, viewer: Viewer) -> None:
    avatar = await LocalAvatar.start(
        RoomTarget(target.url, target.api_key, target.api_secret, target.room),
        identity="presenter",
    )
    comp = await Compositor.start(target, "presenter", "#0044ff", one_layer())
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        # frames that left the compositor before the avatar's first one are background only
        composited_since = time.monotonic() + 1.0
        # regions that are background (or avatar) whatever the presenter does meanwhile
        # (a renderer of our own with the avatar's seed: the avatar's is busy in its thread)
        twin = AvatarRenderer(1280, 720, seed=avatar.renderer.seed)
        samples = [twin.render(t, 0.5, noise=False) for t in np.arange(0, 4, 0.5)]
        alphas = np.stack([a for _, a in samples])
        bg, _ = region_masks(alphas.max(0), margin=12)
        _, fg = region_masks(alphas.min(0), margin=12)
        fg_rgb = np.median(np.stack([rgb for rgb, _ in samples]), axis=0)
        assert bg.sum() > 200_000 and fg.sum() > 20_000

        frame = await viewer.until(
            comp.identity,
            lambda f: f.rgb.shape == (720, 1280, 3) and f.received > composited_since,
            60,
        )
        bg_err = np.abs(frame.rgb[bg].astype(float) - BLUE).mean()
        fg_err = np.abs(frame.rgb[fg].astype(float) - fg_rgb[fg]).mean()
        assert bg_err < 20, f"background off by {bg_err:.1f}"
        assert fg_err < 30, f"presenter off by {fg_err:.1f}"

        # the voice: speech from the avatar reaches the viewer on the compositor's track
        await avatar.speak("Hello from the green room. This is a test of the voice.")
        track = await _wait_for(lambda: viewer.audio_tracks.get(comp.identity), 60)
        pub = viewer.room.remote_participants[comp.identity].track_publications
        assert any(p.name == AUDIO_TRACK_NAME for p in pub.values())
        peak = await _loudest(track, seconds=4.0)
        assert peak > 1000, f"compositor audio is silent (peak {peak})"
        m = comp.metrics()
        assert m["audio_frames"] > 0 and m["audio_offset_ms"] is not None
    finally:
        await comp.aclose()
        await avatar.aclose()


async def _wait_for(get, timeout: float):
    deadline = time.monotonic() + timeout
    while (value := get()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("not there in time")
        await asyncio.sleep(0.1)
    return value


async def _loudest(track: rtc.Track, seconds: float) -> int:
    stream = rtc.AudioStream(track, sample_rate=48_000, num_channels=1)
    peak = 0
    deadline = time.monotonic() + seconds
    try:
        async for ev in stream:
            samples = np.frombuffer(ev.frame.data, np.int16)
            peak = max(peak, int(np.abs(samples.astype(np.int32)).max(initial=0)))
            if time.monotonic() > deadline or peak > 1000:
                break
    finally:
        await stream.aclose()
    return peak
