"""The attach provider composites an avatar someone else runs, and never stops it."""

from __future__ import annotations

import pytest

from greenroom.avatars import RoomTarget, get_provider
from greenroom.avatars.local import LocalAvatar
from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor import Compositor
from greenroom.errors import Conflict, NotFound

from .conftest import Viewer, avatar_visible, corner_rgb, near
from .test_providers_live import _participants, _until

pytestmark = pytest.mark.livekit


async def test_attach_composites_and_leaves_the_avatar_running(
    target: RoomTarget, viewer: Viewer
) -> None:
    outside = await LocalAvatar.start(target, identity="tavus-replica")  # "someone else's"
    try:
        session = await get_provider("attach").start(target, avatar_id="tavus-replica")
        assert session.identity == "tavus-replica"
        comp = await Compositor.start(target, session.identity, BackgroundSpec.parse("#0044ff"))
        try:
            await comp.wait_first_frame(30)
            await viewer.frame(comp.identity)
            await _until(
                lambda: (
                    near(corner_rgb(viewer.latest[comp.identity]), (0, 68, 255))
                    and avatar_visible(viewer.latest[comp.identity], (0, 68, 255))
                ),
                30,
                "the attached avatar on blue",
            )
            with pytest.raises(Conflict, match="driven by its own agent"):
                await session.speak("hello")
        finally:
            await session.aclose()
            await comp.aclose()
        assert "tavus-replica" in await _participants(target)  # still there: not ours to stop
    finally:
        await outside.aclose()


async def test_attach_to_nobody_is_not_found(target: RoomTarget) -> None:
    with pytest.raises(NotFound, match="no participant 'nobody'"):
        await get_provider("attach").start(target, avatar_id="nobody", wait_s=0.5)
