"""The HeyGen emulator's session life: the avatar joins the room HeyGen hosts, keep-alive holds
an idle session open, inactivity ends it, and calls on an ended session get code 400006."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from livekit import rtc

from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.heygen import AVATAR_IDENTITY
from greenroom.emulators.testing import serve
from greenroom.livekit_server import LiveKitServer

pytestmark = pytest.mark.livekit


async def test_idle_timeout_keep_alive_and_wrong_state(livekit: LiveKitServer) -> None:
    cfg = EmulatorConfig(
        livekit=LiveKitAccess(livekit.url, livekit.api_key, livekit.api_secret), idle_timeout=2.0
    )
    app = heygen_emu.create_app(cfg, LocalBackend())
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"X-Api-Key": "any"}, timeout=60) as c,
    ):
        new = (await c.post("/v1/streaming.new", json={"avatar_id": "a", "version": "v2"})).json()
        sid = new["data"]["session_id"]
        r = await c.post("/v1/streaming.new", json={"avatar_id": "a"})
        assert r.status_code == 400 and "v2" in r.json()["message"]
        assert (await c.post("/v1/streaming.start", json={"session_id": sid})).status_code == 200

        async def keep_alive_every_half_second() -> None:
            while True:
                r = await c.post("/v1/streaming.keep_alive", json={"session_id": sid})
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.5)

        pinger = asyncio.create_task(keep_alive_every_half_second())
        # a client with HeyGen's access_token sees the avatar in HeyGen's room
        room = rtc.Room()
        await room.connect(new["data"]["url"], new["data"]["access_token"])
        try:
            for _ in range(100):
                if AVATAR_IDENTITY in {p.identity for p in room.remote_participants.values()}:
                    break
                await asyncio.sleep(0.1)
            assert AVATAR_IDENTITY in {p.identity for p in room.remote_participants.values()}
        finally:
            await room.disconnect()

        await asyncio.sleep(3)  # keep-alives outlast the 2 s idle timeout
        (session,) = app.state.book.sessions.values()
        assert session.status == "connected"
        assert not pinger.done()  # every keep-alive succeeded
        pinger.cancel()

        await asyncio.sleep(4)  # now idle
        assert (session.status, session.stop_reason) == ("closed", "idle_timeout")
        r = await c.post("/v1/streaming.task", json={"session_id": sid, "text": "hello?"})
        assert r.status_code == 400 and r.json()["code"] == 400006
        assert (await c.get("/v1/streaming.list")).json()["data"]["sessions"] == []
