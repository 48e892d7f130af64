"""LiveKit's own LiveAvatar plugin (``livekit-plugins-liveavatar``, PyPI) against our emulator.

The plugin lets the API URL be set (``api_url``), so it runs unmodified: it mints its LiveKit
token, creates a LITE session, starts it, opens the session WebSocket and streams an agent's
speech as ``agent.speak`` chunks. The speech handle completing proves the emulator's
``agent.speak_started``/``speak_ended`` round trip; the avatar is seen in the room.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, utils
from livekit.agents.voice import room_io
from livekit.plugins import liveavatar

from greenroom.avatars import RoomTarget
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend

from .conftest import Viewer, serve

pytestmark = pytest.mark.livekit


async def _tone(seconds: float, rate: int = 48_000):
    """A 220 Hz tone in 20 ms frames (what a TTS would hand the session)."""
    n = rate // 50
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)
    for i in range(0, len(pcm) - n + 1, n):
        yield rtc.AudioFrame(pcm[i : i + n].tobytes(), rate, 1, n)


async def test_livekit_agents_plugin_against_emulator(
    target: RoomTarget, viewer: Viewer, emu_config
) -> None:
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, utils.http_context.open():
        room = rtc.Room()
        await room.connect(target.url, target.agent_token("agent"))
        session = AgentSession()
        avatar = liveavatar.AvatarSession(
            avatar_id="anna", api_url=f"{url}/v1/sessions", api_key="dev", is_sandbox=True
        )
        try:
            await avatar.start(
                session,
                room,
                livekit_url=target.url,
                livekit_api_key=target.api_key,
                livekit_api_secret=target.api_secret,
            )
            await session.start(
                agent=Agent(instructions="say what you are told"),
                room=room,
                room_options=room_io.RoomOptions(
                    audio_input=False, text_input=False, video_input=False, text_output=False
                ),
            )
            (emulated,) = app.state.book.sessions.values()
            assert emulated.status == "connected"
            assert emulated.extra["request"].is_sandbox
            await viewer.frame(avatar.avatar_identity, timeout=30)  # the avatar's own video

            handle = session.say("a tone", audio=_tone(1.5), allow_interruptions=False)
            await asyncio.wait_for(handle.wait_for_playout(), 30)
            assert not handle.interrupted
        finally:
            await session.aclose()
            await avatar.aclose()
            await room.disconnect()
        for _ in range(100):
            if emulated.status == "closed":
                break
            await asyncio.sleep(0.1)
        assert emulated.status == "closed" and emulated.stop_reason == "USER_DISCONNECTED"
