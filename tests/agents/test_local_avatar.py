"""``add_background`` in an agent's room with the built-in avatar already in it (the
``attach`` case): the viewer sees the background where the screen was and the avatar kept,
a switch, the attribute that mirrors it, and nothing of the compositor left after closing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from livekit import rtc
from PIL import Image

from greenroom.agents import BackgroundHandle, add_background
from greenroom.avatars import RoomTarget
from greenroom.avatars.local import LocalAvatar
from greenroom.compositor import ATTR_BACKGROUND
from greenroom.errors import Conflict, InvalidInput

from .conftest import AGENT, Viewer, is_background, wait_for

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)
ORANGE = (240, 128, 32)


async def test_background_behind_the_local_avatar(
    target: RoomTarget, agent_room: rtc.Room, viewer: Viewer, tmp_path: Path
) -> None:
    office = tmp_path / "office.png"
    Image.new("RGB", (640, 360), ORANGE).save(office)
    avatar = await LocalAvatar.start(target, identity="presenter")
    try:
        handle = await add_background(
            agent_room, avatar=avatar, background="#0044ff", mode="auto", timeout=90
        )
        async with handle:
            assert isinstance(handle, BackgroundHandle)
            assert handle.mode == "chroma"  # the built-in avatar stands on a green screen
            assert handle.avatar_identity == "presenter"
            await viewer.until(AGENT, is_background(BLUE), timeout=60)
            assert handle.snapshot_png() is not None

            with pytest.raises(Conflict):  # one background per agent room
                await add_background(agent_room, avatar="presenter", background="#000000")
            with pytest.raises(InvalidInput) as bad:  # the picture stays
                await handle.set_background("#0f0")
            assert bad.value.field == "background"
            with pytest.raises(InvalidInput) as missing:
                await handle.set_background(str(tmp_path / "nowhere.jpg"))
            assert missing.value.field == "background"
            assert "nowhere.jpg" in missing.value.message

            await handle.set_background(str(office), transition=0.2)
            await viewer.until(AGENT, is_background(ORANGE), timeout=60)
            p = viewer.room.remote_participants[AGENT]
            await wait_for(lambda: "office.png" in p.attributes.get(ATTR_BACKGROUND, ""))
            assert json.loads(p.attributes[ATTR_BACKGROUND])["kind"] == "image"
            assert handle.metrics()["frames_out"] > 0

        assert handle.closed and agent_room.isconnected()
        await wait_for(lambda: not viewer.compositors(), timeout=60)
        # the avatar itself is untouched and still publishing
        assert any(
            pub.kind == rtc.TrackKind.KIND_VIDEO
            for pub in viewer.room.remote_participants["presenter"].track_publications.values()
        )
    finally:
        await avatar.aclose()


async def test_added_again_after_closing(
    target: RoomTarget, agent_room: rtc.Room, viewer: Viewer
) -> None:
    """A closed handle frees the room: a new background (chroma forced) by identity."""
    avatar = await LocalAvatar.start(target, identity="presenter-2")
    try:
        first = await add_background(
            agent_room, avatar="presenter-2", background="#0044ff", mode="chroma", timeout=90
        )
        await first.aclose()
        await first.aclose()  # idempotent
        async with await add_background(
            agent_room, avatar="presenter-2", background="#ffffff", mode="chroma", timeout=90
        ) as second:
            await viewer.until(AGENT, is_background((255, 255, 255)), timeout=60)
            assert second.mode == "chroma" and second.background.color == "#ffffff"
    finally:
        await avatar.aclose()
