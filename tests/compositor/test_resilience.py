"""The compositor keeps going: the avatar leaves and returns, the frame size changes,
two compositors share a room without processing each other."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from greenroom.compositor import Compositor, CompositorOptions
from greenroom.compositor.synthetic import SKIN

from .conftest import FIRST_FRAME, Target, Viewer, ViewerFrame, center_is, one_layer

pytestmark = pytest.mark.livekit

BLUE = np.array([0, 68, 255])


async def test_avatar_leaves_and_rejoins(target: Target, viewer: Viewer, synthetic_avatar) -> None:
    avatar = await synthetic_avatar("avatar-r", motion=False, flash=False)
    comp = await Compositor.start(
        target, "avatar-r", "#0044ff", CompositorOptions(stats_interval=0)
    )
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(comp.identity, center_is(SKIN))

        await avatar.aclose()
        # meanwhile: the background alone, still published
        await viewer.until(comp.identity, center_is(BLUE), timeout=60)
        assert comp.metrics()["avatar_present"] is False
        assert comp.metrics()["waiting_frames_out"] > 0
        out_before = comp.metrics()["frames_out"]

        await synthetic_avatar("avatar-r", motion=False, flash=False)
        await viewer.until(comp.identity, center_is(SKIN), timeout=60)
        assert comp.metrics()["frames_out"] > out_before
        assert comp.metrics()["avatar_present"] is True
        assert not comp.closed
    finally:
        await comp.aclose()


async def test_resolution_change_mid_stream(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    avatar = await synthetic_avatar("avatar-s", motion=False, flash=False, audio=False)
    comp = await Compositor.start(target, "avatar-s", "#0044ff", one_layer())
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(
            comp.identity, lambda f: f.rgb.shape[:2] == (720, 1280) and center_is(SKIN)(f)
        )

        avatar.scene.width, avatar.scene.height = 960, 540
        smaller = await viewer.until(
            comp.identity,
            lambda f: f.rgb.shape[:2] == (540, 960) and center_is(SKIN)(f),
            timeout=60,
        )
        assert center_is(BLUE)(ViewerFrame(smaller.rgb[:60, :60], None, 0, "")), (
            "background lost after resize"
        )
        assert comp.metrics()["resolution"] == [960, 540]
    finally:
        await comp.aclose()


async def test_two_compositors_do_not_process_each_other(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    await synthetic_avatar("avatar-1", motion=False, flash=False, audio=False)
    await synthetic_avatar("avatar-2", motion=False, flash=False, audio=False)
    opts = CompositorOptions(stats_interval=0)
    c1 = await Compositor.start(target, "avatar-1", "#0044ff", opts)
    c2 = await Compositor.start(target, "avatar-2", "#ff2200", opts)
    # misconfigured: told to composite another compositor. It must refuse.
    c3 = await Compositor.start(target, c1.identity, "#00ff00", opts)
    try:
        await c1.wait_first_frame(FIRST_FRAME)
        await c2.wait_first_frame(FIRST_FRAME)
        await viewer.until(c1.identity, center_is(SKIN))
        await viewer.until(c2.identity, center_is(SKIN))

        def subscribed(comp: Compositor) -> set[str]:
            assert comp.room is not None
            return {
                p.identity
                for p in comp.room.remote_participants.values()
                for pub in p.track_publications.values()
                if pub.subscribed
            }

        # Sampled over a few seconds: never anything but its own avatar. (On a loaded
        # machine the stall watchdog may renew a subscription, so "own" can be briefly
        # absent; what must never appear is another participant.)
        seen = {c.identity: set[str]() for c in (c1, c2, c3)}
        for _ in range(15):
            for comp, own in ((c1, "avatar-1"), (c2, "avatar-2"), (c3, None)):
                now = subscribed(comp)
                assert now <= ({own} if own else set()), (comp.identity, now)
                seen[comp.identity] |= now
            await asyncio.sleep(0.2)
        assert seen == {c1.identity: {"avatar-1"}, c2.identity: {"avatar-2"}, c3.identity: set()}
        assert c3.metrics()["frames_in"] == 0
        assert c1.metrics()["frames_in"] > 0 and c2.metrics()["frames_in"] > 0
    finally:
        for c in (c1, c2, c3):
            await asyncio.wait_for(c.aclose(), 60)


async def test_camera_keeps_coming_after_the_subscription_is_renewed(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    """What the stall watchdog does after two stalls in a row (unsubscribe, subscribe again)
    must bring frames back, not leave the compositor with no reader and a frozen picture."""
    avatar = await synthetic_avatar("avatar-n", motion=False, flash=False, audio=False)
    comp = await Compositor.start(target, "avatar-n", "#0044ff", one_layer())
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(comp.identity, center_is(SKIN))
        for _ in range(3):
            before = comp.metrics()["frames_in"]
            comp._tracks.renew_video_subscription()  # the watchdog's step after two stalls
            deadline = asyncio.get_running_loop().time() + 60
            while comp.metrics()["frames_in"] < before + 30:
                assert asyncio.get_running_loop().time() < deadline, comp.metrics()
                await asyncio.sleep(0.2)
        # and the picture follows the avatar: it changes size, the viewer sees the new size
        avatar.scene.width, avatar.scene.height = 960, 540
        await viewer.until(
            comp.identity, lambda f: f.rgb.shape[:2] == (540, 960) and center_is(SKIN)(f)
        )
    finally:
        await comp.aclose()


async def test_camera_that_sends_nothing_is_renewed_and_comes_back(
    target: Target, viewer: Viewer, synthetic_avatar, caplog: pytest.LogCaptureFixture
) -> None:
    """The avatar's camera stays published but sends nothing for longer than the stall
    watchdog waits: the receiver decodes nothing, so the subscription is renewed at once
    (not the stream merely reopened), and the picture comes back when frames flow again."""
    caplog.set_level(logging.WARNING, logger="greenroom.compositor")
    avatar = await synthetic_avatar("avatar-s", motion=False, flash=False, audio=False)
    comp = await Compositor.start(target, "avatar-s", "#0044ff", one_layer())
    loop = asyncio.get_running_loop()
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(comp.identity, center_is(SKIN))
        avatar.video_paused = True
        deadline = loop.time() + 60
        while comp.metrics()["video_restarts"] < 1:
            assert loop.time() < deadline, comp.metrics()
            await asyncio.sleep(0.2)
        stalls = [r.getMessage() for r in caplog.records if "avatar video" in r.getMessage()]
        assert stalls and "decodes nothing" in stalls[0], stalls
        assert "renewing the subscription" in stalls[0], stalls

        avatar.video_paused = False
        before = comp.metrics()["frames_in"]
        deadline = loop.time() + 60
        while comp.metrics()["frames_in"] < before + 30:
            assert loop.time() < deadline, comp.metrics()
            await asyncio.sleep(0.2)
        await viewer.until(comp.identity, center_is(SKIN))
        assert not comp.closed
    finally:
        await comp.aclose()
