"""Only the avatar we minted is composited: a participant that joins first with the
avatar's identity but the wrong kind or attributes is ignored, with a warning."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from livekit import api

from greenroom.compositor import Compositor, CompositorOptions
from greenroom.compositor.synthetic import SKIN, DiscScene, SyntheticAvatar
from greenroom.tokens import agent_token

from .conftest import FIRST_FRAME, Target, Viewer
from .test_resilience import BLUE, center_is

pytestmark = pytest.mark.livekit


def standard_token(target: Target, identity: str) -> str:
    """A token someone with the API secret could mint: kind standard, allowed to publish."""
    grants = api.VideoGrants(room_join=True, room=target.room, can_publish=True)
    return (
        api.AccessToken(target.api_key, target.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )


async def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    """A hang bound, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_impostors_with_the_avatars_identity_are_ignored(
    target: Target, viewer: Viewer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="greenroom.compositor")
    started: list[SyntheticAvatar] = []

    async def avatar(identity: str, token: str) -> SyntheticAvatar:
        av = SyntheticAvatar(scene=DiscScene(motion=False), flash=False, audio=False)
        started.append(av)
        return await av.start(
            target.url, target.api_key, target.api_secret, target.room, identity, token=token
        )

    # the impostors join first: one of the wrong kind, one an agent without our attributes
    await avatar("avatar-k", standard_token(target, "avatar-k"))
    await avatar("avatar-a", agent_token(target.api_key, target.api_secret, room=target.room,
                                         identity="avatar-a"))  # fmt: skip
    minted = {"greenroom.session": "s-1"}
    comps = [
        await Compositor.start(target, "avatar-k", "#0044ff", CompositorOptions(stats_interval=0)),
        await Compositor.start(
            target,
            "avatar-a",
            "#0044ff",
            CompositorOptions(stats_interval=0, avatar_attributes=minted),
        ),
    ]
    try:
        for comp, why in ((comps[0], "kind standard"), (comps[1], "greenroom.session")):
            await wait_until(
                lambda comp=comp, why=why: any(
                    comp.avatar_identity in r.getMessage() and why in r.getMessage()
                    for r in caplog.records
                ),
                f"no warning about the impostor of {comp.avatar_identity}",
            )
            # the viewer sees the background alone, and nothing of the impostor was read
            await viewer.until(comp.identity, center_is(BLUE), timeout=FIRST_FRAME)
            assert comp.metrics()["frames_in"] == 0
            assert comp.metrics()["avatar_present"] is False

        # the real avatars join with what was minted for them (LiveKit drops the impostors)
        await avatar("avatar-k", agent_token(target.api_key, target.api_secret,
                                             room=target.room, identity="avatar-k"))  # fmt: skip
        await avatar("avatar-a", agent_token(target.api_key, target.api_secret,
                                             room=target.room, identity="avatar-a",
                                             attributes=minted))  # fmt: skip
        for comp in comps:
            await viewer.until(comp.identity, center_is(SKIN))
            assert comp.metrics()["frames_in"] > 0
    finally:
        for comp in comps:
            await comp.aclose()
        for av in started:
            await av.aclose()
