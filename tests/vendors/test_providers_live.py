"""Every vendor provider through a whole session against its emulator, with the real LiveKit
server, the built-in avatar behind the emulator, the real compositor and a viewer:
start -> composited frames with the template's background -> speak -> switch background ->
stop -> nothing left running (vendor session closed, nobody but the viewer in the room)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from livekit import api

from greenroom.avatars import AvatarState, RoomTarget, get_provider
from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor import Compositor
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend

from .conftest import Viewer, avatar_visible, corner_rgb, near, serve

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

BLUE, ORANGE = (0, 68, 255), (255, 136, 0)


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _participants(target: RoomTarget) -> set[str]:
    http = "http" + target.url[2:]
    async with api.LiveKitAPI(http, target.api_key, target.api_secret) as lk:
        res = await lk.room.list_participants(api.ListParticipantsRequest(room=target.room))
    return {p.identity for p in res.participants}


async def _full_session(session, target: RoomTarget, viewer: Viewer) -> None:
    """The shared middle of every provider test: composite, speak, switch, stop."""
    async with asyncio.timeout(240):  # a hang fails here, with the stack, not at pytest-timeout
        await _composite_speak_switch_stop(session, target, viewer)


async def _composite_speak_switch_stop(session, target: RoomTarget, viewer: Viewer) -> None:
    states: list[AvatarState] = []
    session.on_state(states.append)
    comp = await Compositor.start(target, session.identity, BackgroundSpec.parse("#0044ff"))
    try:
        await comp.wait_first_frame(40)
        await viewer.frame(comp.identity, timeout=30)
        # the template's background at the edges, the avatar in the middle (once its first
        # frame has reached the compositor; before that the background shows alone)
        await _until(
            lambda: (
                near(corner_rgb(viewer.latest[comp.identity]), BLUE)
                and avatar_visible(viewer.latest[comp.identity], BLUE)
            ),
            30,
            "the avatar on a blue background",
        )
        frame = viewer.latest[comp.identity]
        assert frame.shape[1] * 9 == frame.shape[0] * 16  # 16:9, whichever simulcast layer

        await session.speak("Hello from the emulator. This is a test.")
        await _until(lambda: AvatarState.SPEAKING in states, 30, "speaking")
        await _until(lambda: states[-1] == AvatarState.IDLE, 40, "idle after speech")

        await comp.set_background(BackgroundSpec.parse("#ff8800"), transition=0)
        switched = time.monotonic()
        await _until(
            lambda: (
                viewer.stamps.get(comp.identity, 0) > switched
                and near(corner_rgb(viewer.latest[comp.identity]), ORANGE)
            ),
            20,
            "orange background at the viewer",
        )
        await session.keep_alive()
    finally:
        await session.aclose()
        await comp.aclose()
    assert session.state == AvatarState.STOPPED


async def test_liveavatar_lite_session(target: RoomTarget, viewer: Viewer, emu_config) -> None:
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        session = await get_provider("liveavatar").start(
            target, avatar_id="anna", voice="en-us", api_key="dev", base_url=url, client=client
        )
        assert session.identity in await _participants(target)  # joined OUR room
        await _full_session(session, target, viewer)
        (emulated,) = app.state.book.sessions.values()
        assert emulated.status == "closed" and emulated.stop_reason == "USER_CLOSED"
        kinds = [e["type"] for e in session.events]
        assert "agent.speak_started" in kinds and "agent.speak_ended" in kinds
    await _until_room_has(target, {"viewer"})


async def test_liveavatar_full_session(target: RoomTarget, viewer: Viewer, emu_config) -> None:
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        session = await get_provider("liveavatar").start(
            target,
            avatar_id="anna",
            voice="en-us",
            mode="FULL",
            api_key="dev",
            base_url=url,
            client=client,
        )
        await _full_session(session, target, viewer)
        (emulated,) = app.state.book.sessions.values()
        assert emulated.status == "closed"
        kinds = [e["event_type"] for e in session.events]
        assert "avatar.speak_started" in kinds and "avatar.transcription" in kinds
    await _until_room_has(target, {"viewer"})


async def test_heygen_session(target: RoomTarget, viewer: Viewer, emu_config) -> None:
    app = heygen_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        session = await get_provider("heygen").start(
            target,
            avatar_id="Anna_public",
            voice="en-us",
            api_key="dev",
            base_url=url,
            client=client,
        )
        await _full_session(session, target, viewer)
        (emulated,) = app.state.book.sessions.values()
        assert emulated.status == "closed" and emulated.avatar is None
        kinds = [e["type"] for e in session.events]
        assert "avatar_start_talking" in kinds and "avatar_stop_talking" in kinds
    await _until_room_has(target, {"viewer"})


async def _until_room_has(target: RoomTarget, want: set[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (have := await _participants(target)) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"room still holds {sorted(have)}, expected {sorted(want)}")
        await asyncio.sleep(0.2)
