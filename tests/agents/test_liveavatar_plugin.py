"""``add_background`` on LiveKit's own LiveAvatar plugin (``livekit-plugins-liveavatar``,
unmodified, its ``api_url`` pointed at our emulator) in an agents flow: an ``AgentSession``
with the plugin's avatar in the agent's room, the background added on the plugin's session,
switched, closed, and added again by ``lk.publish_on_behalf`` alone."""

from __future__ import annotations

import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, utils
from livekit.agents.voice import room_io
from livekit.plugins import liveavatar

from greenroom.agents import PUBLISH_ON_BEHALF, add_background
from greenroom.avatars import RoomTarget
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve

from .conftest import AGENT, Viewer, is_background, wait_for

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)
WHITE = (255, 255, 255)
ORANGE = (240, 128, 32)


async def test_background_on_the_official_liveavatar_plugin(
    target: RoomTarget, agent_room: rtc.Room, viewer: Viewer
) -> None:
    cfg = EmulatorConfig(
        livekit=LiveKitAccess(target.url, target.api_key, target.api_secret), api_key="dev"
    )
    app = liveavatar_emu.create_app(cfg, LocalBackend())
    async with serve(app) as url, utils.http_context.open():
        session = AgentSession()
        avatar = liveavatar.AvatarSession(
            avatar_id="anna", api_url=f"{url}/v1/sessions", api_key="dev"
        )
        try:
            await avatar.start(
                session,
                agent_room,
                livekit_url=target.url,
                livekit_api_key=target.api_key,
                livekit_api_secret=target.api_secret,
            )
            await session.start(
                agent=Agent(instructions="say what you are told"),
                room=agent_room,
                room_options=room_io.RoomOptions(
                    audio_input=False, text_input=False, video_input=False, text_output=False
                ),
            )
            async with await add_background(
                agent_room, avatar=avatar, background="#0044ff", timeout=90
            ) as bg:
                assert bg.mode == "chroma"  # auto: the emulator's avatar is on a green screen
                assert bg.avatar_identity == avatar.avatar_identity
                await viewer.until(AGENT, is_background(BLUE), timeout=60)
                await bg.set_background(f"#{ORANGE[0]:02x}{ORANGE[1]:02x}{ORANGE[2]:02x}")
                await viewer.until(AGENT, is_background(ORANGE), timeout=60)
            await wait_for(lambda: not viewer.compositors(), timeout=60)

            # no avatar named: the participant publishing on behalf of this agent
            raw = viewer.room.remote_participants[avatar.avatar_identity]
            assert raw.attributes[PUBLISH_ON_BEHALF] == AGENT
            async with await add_background(
                agent_room, background="#ffffff", mode="chroma", timeout=90
            ) as bg:
                assert bg.avatar_identity == avatar.avatar_identity
                await viewer.until(AGENT, is_background(WHITE), timeout=60)
        finally:
            await session.aclose()
            await avatar.aclose()
