"""Bad settings for the frontends' attributes are refused with the field named."""

from __future__ import annotations

import pytest
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.avatars.local import LocalAvatar
from greenroom.compositor import Compositor, CompositorOptions
from greenroom.errors import InvalidInput

pytestmark = pytest.mark.unit


async def test_publish_on_behalf_is_for_a_compositor_of_its_own() -> None:
    with pytest.raises(InvalidInput) as err:
        await Compositor.attach(
            rtc.Room(), "presenter", "#0044ff", CompositorOptions(publish_on_behalf="agent")
        )
    assert err.value.field == "publish_on_behalf"
    with pytest.raises(InvalidInput) as err:
        CompositorOptions(publish_on_behalf=" ")
    assert err.value.field == "publish_on_behalf"


def test_composited_by_must_name_someone() -> None:
    target = RoomTarget("ws://127.0.0.1:1", "k", "s" * 32, "r")
    with pytest.raises(InvalidInput) as err:
        LocalAvatar(target, composited_by="")
    assert err.value.field == "composited_by"
