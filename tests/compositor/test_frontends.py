"""What LiveKit's agents frontends and viewers get from a composited room.

The built-in avatar started with ``composited_by`` lets only that participant subscribe to
its raw tracks and points ``lk.publish_on_behalf`` at it; a compositor with
``publish_on_behalf`` carries the agent's identity (the browser side is
tests/browser/test_agents_frontend.py)."""

from __future__ import annotations

import asyncio

import pytest
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.avatars.local import LocalAvatar
from greenroom.compositor import Compositor, CompositorOptions
from greenroom.compositor.synthetic import DiscScene, SyntheticAvatar
from greenroom.tokens import agent_token, viewer_token

from .conftest import FIRST_FRAME, Target, one_layer

pytestmark = pytest.mark.livekit

PUBLISH_ON_BEHALF = "lk.publish_on_behalf"


async def test_raw_avatar_is_for_its_compositor_only(target: Target) -> None:
    avatar = await LocalAvatar.start(
        RoomTarget(target.url, target.api_key, target.api_secret, target.room),
        identity="presenter",
        width=320,
        height=180,
        fps=10.0,
        composited_by="greenroom-presenter",
    )
    comp = await Compositor.start(
        target,
        "presenter",
        "#0044ff",
        CompositorOptions(simulcast=False, stats_interval=0, publish_on_behalf="voice-agent"),
    )
    viewer = rtc.Room()
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        token = viewer_token(target.api_key, target.api_secret, room=target.room, identity="v")
        await viewer.connect(target.url, token, rtc.RoomOptions(auto_subscribe=False))
        raw = viewer.remote_participants["presenter"]
        assert raw.attributes[PUBLISH_ON_BEHALF] == "greenroom-presenter"
        ours = viewer.remote_participants[comp.identity]
        assert ours.attributes[PUBLISH_ON_BEHALF] == "voice-agent"

        # the compositor reads the raw tracks (its first frame above is the avatar keyed);
        # that viewers cannot is checked in Chromium (tests/browser/test_agents_frontend.py)
        assert comp.metrics()["frames_out"] > 0
    finally:
        await viewer.disconnect()
        await comp.aclose()
        await avatar.aclose()


async def test_compositor_publishes_for_the_agent_its_avatar_names(target: Target) -> None:
    """A vendor-style avatar names the agent in its token; its compositor then does too, so
    the agents frontends never take the compositor for the agent itself."""
    token = agent_token(
        target.api_key,
        target.api_secret,
        room=target.room,
        identity="vendor-avatar",
        attributes={PUBLISH_ON_BEHALF: "voice-agent"},
    )
    avatar = SyntheticAvatar(scene=DiscScene(width=320, height=180), audio=False)
    await avatar.start(
        target.url, target.api_key, target.api_secret, target.room, "vendor-avatar", token=token
    )
    comp = await Compositor.start(target, "vendor-avatar", "#0044ff", one_layer())
    viewer = rtc.Room()
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        token = viewer_token(target.api_key, target.api_secret, room=target.room, identity="v")
        await viewer.connect(target.url, token, rtc.RoomOptions(auto_subscribe=False))

        async def named() -> bool:
            while True:
                p = viewer.remote_participants.get(comp.identity)
                if p is not None and p.attributes.get(PUBLISH_ON_BEHALF) == "voice-agent":
                    return True
                await asyncio.sleep(0.1)

        assert await asyncio.wait_for(named(), 60)
    finally:
        await viewer.disconnect()
        await comp.aclose()
        await avatar.aclose()
