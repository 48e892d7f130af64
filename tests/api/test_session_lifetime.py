"""Sessions live as long as the user says, on a LiveKit server that closes its own rooms fast.

The server here closes a room it made on a join 10 s after creation when no person joined,
and 3 s after the last person left (avatar and compositor are agents: they do not count).
Greenroom creates its rooms itself with long timeouts, so sessions outlive both; each way a
session ends is recorded with its own ``stop_reason`` (the table in docs/api.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from livekit import api as lkapi
from livekit import rtc

from greenroom.api import create_app
from greenroom.api.services.sessions import SessionManager
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

from . import disc_provider
from .support import make_settings, open_client
from .test_sessions import avatar_visible, snapshot

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

BLUE = (0, 68, 255)
IDLE = 20  # seconds, for the idle test: long enough for a keep-alive round on a loaded machine
MAX = 30
SESSIONS = "/v2/streaming/sessions"


@pytest.fixture(scope="module")
def disc() -> disc_provider.DiscProvider:
    return disc_provider.register()


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(app):
        yield c


@pytest.fixture
def app(data_dir: Path, livekit_short_rooms: LiveKitServer) -> FastAPI:
    return create_app(make_settings(data_dir, livekit_short_rooms), warm_up=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(app):
        yield c


def manager(app: FastAPI) -> SessionManager:
    return app.state.services.sessions


async def template(c: httpx.AsyncClient, name: str, **fields: object) -> str:
    body = {"name": name, "provider": "disc", "background": "#0044ff", **fields}
    r = await c.post("/v1/templates", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def start(c: httpx.AsyncClient, template_id: str, **fields: object) -> dict[str, object]:
    r = await c.post(SESSIONS, json={"template_id": template_id, **fields})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def status(c: httpx.AsyncClient, sid: object) -> dict[str, object]:
    return dict((await c.get(f"{SESSIONS}/{sid}")).json())


async def wait_stopped(c: httpx.AsyncClient, sid: object, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (s := await status(c, sid))["status"] == "started":
        assert time.monotonic() < deadline, f"session still running after {timeout:.0f} s"
        await asyncio.sleep(0.25)
    return s


async def rooms(lk: LiveKitServer) -> dict[str, lkapi.Room]:
    async with lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as api:
        res = await api.room.list_rooms(lkapi.ListRoomsRequest())
    return {r.name: r for r in res.rooms}


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_sessions_outlive_the_servers_room_timeouts_with_and_without_viewers(
    client: httpx.AsyncClient, livekit_short_rooms: LiveKitServer, disc: disc_provider.DiscProvider
) -> None:
    """One session nobody watches, one a viewer joins and leaves: both still run 30 s later,
    well past the server's 10 s empty and 3 s departure timeouts, and still show the avatar."""
    c = client
    tpl = await template(c, "outlive")
    alone = await start(c, tpl)
    watched = await start(c, tpl)
    made = await rooms(livekit_short_rooms)
    for s in (alone, watched):
        room = made[str(s["room"])]
        assert room.empty_timeout >= 300 and room.departure_timeout >= 300, room
        assert s["warnings"] == []
    await snapshot(c, str(watched["session_id"]))

    viewer = rtc.Room()
    await asyncio.wait_for(
        viewer.connect(str(watched["livekit_url"]), str(watched["access_token"])), 60
    )
    await until(
        lambda: any(
            p.identity == watched["compositor_identity"]
            for p in viewer.remote_participants.values()
        ),
        30,
        "the viewer never saw the compositor",
    )
    await asyncio.wait_for(viewer.disconnect(), 20)
    await asyncio.sleep(30)

    for s in (alone, watched):
        now = await status(c, s["session_id"])
        assert (now["status"], now["stop_reason"]) == ("started", None), now
        img = await snapshot(c, str(s["session_id"]))
        assert avatar_visible(img, BLUE)
        assert now["time_left"] is not None and now["time_left_reason"] == "idle_timeout"
    for s in (alone, watched):
        r = await c.delete(f"{SESSIONS}/{s['session_id']}")
        assert (r.json()["status"], r.json()["stop_reason"]) == ("stopped", "stopped_by_user")
    left = await rooms(livekit_short_rooms)
    assert alone["room"] not in left and watched["room"] not in left


async def test_idle_timeout_keep_alive_and_max_duration(
    client: httpx.AsyncClient, disc: disc_provider.DiscProvider
) -> None:
    """max_duration ends a session however often it is kept alive. Keep-alive pushes the
    idle end back; without it the session stops with idle_timeout, not before its idle time
    has passed since the last keep-alive."""
    c = client
    tpl = await template(c, "idle", idle_timeout=300)

    capped = await start(c, tpl, max_duration=MAX)
    s = await status(c, capped["session_id"])
    assert (s["max_duration"], s["time_left_reason"]) == (MAX, "max_duration"), s
    t0 = time.monotonic()
    while (await status(c, capped["session_id"]))["status"] == "started":
        assert time.monotonic() - t0 < MAX + 60, "max_duration did not stop the session"
        await c.post(f"{SESSIONS}/{capped['session_id']}/keep_alive")
        await asyncio.sleep(2)
    s = await status(c, capped["session_id"])
    assert (s["status"], s["stop_reason"]) == ("stopped", "max_duration")
    assert s["stop_description"] == "the session reached its maximum duration (max_duration)"

    idle = await start(c, tpl, idle_timeout=IDLE)  # the request overrides the template
    assert idle["idle_timeout"] == IDLE
    t0 = last_activity = time.monotonic()
    while time.monotonic() - t0 < IDLE / 2:  # kept alive for a while ...
        last_activity = time.monotonic()  # before the call: the session touches later
        r = await c.post(f"{SESSIONS}/{idle['session_id']}/keep_alive")
        assert r.status_code == 200, r.text
        await asyncio.sleep(2)
    s = await wait_stopped(c, idle["session_id"], IDLE + 60)  # ... then left alone
    ended = time.monotonic()
    assert (s["status"], s["stop_reason"]) == ("stopped", "idle_timeout")
    # never before its idle time after the last keep-alive (the clock may only run late)
    assert ended - last_activity >= IDLE - 0.5


async def test_room_deleted_mid_session_ends_it_with_room_closed(
    app: FastAPI,
    client: httpx.AsyncClient,
    livekit_short_rooms: LiveKitServer,
    disc: disc_provider.DiscProvider,
) -> None:
    c = client
    started = await start(c, await template(c, "deleted"))
    sid = str(started["session_id"])
    await snapshot(c, sid)
    live = manager(app).live[sid]
    lk = livekit_short_rooms
    async with lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as api:
        await api.room.delete_room(lkapi.DeleteRoomRequest(room=str(started["room"])))
    s = await wait_stopped(c, sid, 60)
    assert (s["status"], s["stop_reason"]) == ("stopped", "room_closed"), s
    assert "room was closed" in str(s["stop_description"])
    # nothing left running: no live session, compositor and avatar closed, tasks done
    assert sid not in manager(app).live
    assert live.compositor.closed
    assert str(live.avatar.state) == "stopped"
    await until(lambda: all(t.done() for t in live.tasks), 10, "session tasks still running")
    assert started["room"] not in await rooms(lk)
    assert (await c.post(f"{SESSIONS}/{sid}/speak", json={"text": "hi"})).status_code == 409


async def test_avatar_leaving_on_its_own_ends_it_with_avatar_stopped(
    app: FastAPI, client: httpx.AsyncClient, disc: disc_provider.DiscProvider
) -> None:
    c = client
    started = await start(c, await template(c, "leaves"))
    sid = str(started["session_id"])
    await snapshot(c, sid)
    await manager(app).live[sid].avatar.aclose()  # the avatar leaves; nobody asked it to
    s = await wait_stopped(c, sid, 60)
    assert (s["status"], s["stop_reason"]) == ("stopped", "avatar_stopped"), s
    assert sid not in manager(app).live


async def test_caller_named_rooms_are_created_if_missing_and_short_ones_are_reported(
    client: httpx.AsyncClient,
    livekit_short_rooms: LiveKitServer,
    room_name: str,
    disc: disc_provider.DiscProvider,
) -> None:
    c = client
    lk = livekit_short_rooms
    tpl = await template(c, "named")
    mine = await start(c, tpl, livekit_room=f"{room_name}-new")
    assert mine["warnings"] == []
    assert (await rooms(lk))[f"{room_name}-new"].empty_timeout >= 300
    async with lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as api:
        await api.room.create_room(
            lkapi.CreateRoomRequest(name=room_name, empty_timeout=250, departure_timeout=250)
        )
    theirs = await start(c, tpl, livekit_room=room_name)
    warnings = list(theirs["warnings"])  # type: ignore[call-overload]
    assert len(warnings) == 2 and all(room_name in w for w in warnings), warnings
    assert "empty_timeout 250 s" in warnings[0] and "departure_timeout 250 s" in warnings[1]

    for s in (mine, theirs):
        r = await c.delete(f"{SESSIONS}/{s['session_id']}")
        assert r.status_code == 200
    left = await rooms(lk)
    assert f"{room_name}-new" not in left  # Greenroom made it: Greenroom deletes it
    assert room_name in left  # the caller's own room stays


async def test_livekit_server_gone_ends_it_with_livekit_unreachable(
    data_dir: Path, tmp_path: Path, disc: disc_provider.DiscProvider
) -> None:
    from greenroom.config import get_settings

    lk = LiveKitServer.start(
        binary=ensure_binary(get_settings().cache_dir),
        port=free_port(),
        log_path=tmp_path / "lk.log",
    )
    try:
        app = create_app(
            make_settings(data_dir, lk, livekit_unreachable_timeout=3.0), warm_up=False
        )
        async for c in _client(app):
            started = await start(c, await template(c, "unreachable"))
            sid = str(started["session_id"])
            await snapshot(c, sid)
            assert lk.process is not None
            lk.process.kill()  # no goodbye: the server is simply gone
            lk.process.wait(10)
            s = await wait_stopped(c, sid, 120)
            assert (s["status"], s["stop_reason"]) == ("stopped", "livekit_unreachable"), s
            assert sid not in manager(app).live
    finally:
        lk.stop()
