"""The LiveAvatar emulator's LITE WebSocket, spoken to directly as a vendor client would:
events in and out, bad messages answered with ``error`` events while the session lives on,
and the sandbox limit ending the session."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import numpy as np
import pytest
import websockets

from greenroom.avatars import RoomTarget
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve
from greenroom.livekit_server import LiveKitServer

pytestmark = pytest.mark.livekit


@pytest.fixture
def cfg(livekit: LiveKitServer) -> EmulatorConfig:
    return EmulatorConfig(livekit=LiveKitAccess(livekit.url, livekit.api_key, livekit.api_secret))


@pytest.fixture
def target(livekit: LiveKitServer, room_name: str) -> RoomTarget:
    return RoomTarget(livekit.url, livekit.api_key, livekit.api_secret, room_name)


async def _start(client: httpx.AsyncClient, url: str, target: RoomTarget, **extra) -> dict:
    body = {
        "mode": "LITE",
        "avatar_id": "anna",
        "livekit_config": {
            "livekit_url": target.url,
            "livekit_room": target.room,
            "livekit_client_token": target.agent_token("la-avatar"),
        },
        **extra,
    }
    r = await client.post(f"{url}/v1/sessions/token", headers={"X-API-KEY": "k"}, json=body)
    assert r.status_code == 200 and r.json()["code"] == 1000, r.text
    tok = r.json()["data"]
    r = await client.post(
        f"{url}/v1/sessions/start",
        headers={"Authorization": f"Bearer {tok['session_token']}"},
        json={"session_id": tok["session_id"]},
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def _next(ws, kind: str, timeout: float = 20) -> dict:
    async def find() -> dict:
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == kind:
                return event

    return await asyncio.wait_for(find(), timeout)


def _speech(seconds: float) -> str:
    t = np.arange(int(24_000 * seconds)) / 24_000
    pcm = (np.sin(2 * np.pi * 180 * t) * 9000).astype("<i2")
    return base64.b64encode(pcm.tobytes()).decode()


async def test_lite_websocket_protocol(cfg, target) -> None:
    app = liveavatar_emu.create_app(cfg, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient(timeout=60) as client:
        started = await _start(client, url, target)
        assert started["ws_url"].startswith("ws://127.0.0.1:")
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(started["ws_url"].replace("token=", "token=x"))
        async with websockets.connect(started["ws_url"]) as ws:
            assert (await _next(ws, "session.state_updated"))["state"] == "connected"
            for bad, why in [
                ("not json", "JSON"),
                (json.dumps({"type": "agent.speak", "audio": "***"}), "base64"),
                (json.dumps({"type": "agent.dance"}), "unknown event type"),
            ]:
                await ws.send(bad)
                assert why in (await _next(ws, "error"))["error"]["message"]

            await ws.send(json.dumps({"type": "agent.speak", "audio": _speech(0.6)}))
            await ws.send(json.dumps({"type": "agent.speak_end"}))
            started_ev = await _next(ws, "agent.speak_started")
            ended_ev = await _next(ws, "agent.speak_ended")
            assert started_ev["task"]["id"] == ended_ev["task"]["id"]

            await ws.send(json.dumps({"type": "agent.speak", "audio": _speech(3.0)}))
            await _next(ws, "agent.speak_started")
            await ws.send(json.dumps({"type": "agent.interrupt"}))
            await _next(ws, "agent.speak_interrupted")
            await ws.send(json.dumps({"type": "session.keep_alive"}))
        (session,) = app.state.book.sessions.values()
        assert session.status == "connected"  # closing the socket does not end the session
        assert session.avatar is not None and session.avatar.identity == "la-avatar"


async def test_sandbox_sessions_end_at_their_limit(cfg, target) -> None:
    cfg.sandbox_duration = 1.5
    app = liveavatar_emu.create_app(cfg, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient(timeout=60) as client:
        started = await _start(client, url, target, is_sandbox=True)
        assert started["max_session_duration"] == 1
        async with websockets.connect(started["ws_url"]) as ws:
            await _next(ws, "session.state_updated")
            closed = await _next(ws, "session.state_updated", timeout=15)
            assert closed == {**closed, "state": "closed", "reason": "MAX_DURATION_REACHED"}
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        r = await client.get(f"{url}/v1/sessions", headers={"X-API-KEY": "k"})
        (listed,) = r.json()["data"]["sessions"]
        assert (listed["status"], listed["stop_reason"]) == ("closed", "MAX_DURATION_REACHED")
