"""The avatar disappears mid-session: the LiveKit server throws its participant out (what
a crashed avatar process looks like from the room), with no goodbye from our side."""

from __future__ import annotations

import time

import pytest
from livekit import api as lkapi

from .conftest import Service, participants, record, wait_until

pytestmark = [pytest.mark.livekit, pytest.mark.slow]


async def test_avatar_removed_from_the_room_ends_the_session(service: Service) -> None:
    svc, lk = service, service.livekit
    started = await svc.start()
    sid, room, avatar = started["session_id"], started["room"], started["avatar_identity"]
    assert await participants(lk, room) == {avatar, started["compositor_identity"]}

    async with lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as api:
        await api.room.remove_participant(lkapi.RoomParticipantIdentity(room=room, identity=avatar))
    t_kill = time.monotonic()

    async def ended() -> dict | None:
        s = await svc.session(sid)
        return s if s["status"] != "started" else None

    s = await wait_until(ended, "the session to end after its avatar left", timeout=60)
    record("avatar killed", "session stopped", time.monotonic() - t_kill)
    assert (s["status"], s["stop_reason"]) == ("stopped", "avatar_stopped"), s
    assert s["stopped_at"] is not None

    # the user's next call says why, in words
    r = await svc.client.post(f"/v2/streaming/sessions/{sid}/speak", json={"text": "hello?"})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["message"] == (
        f"session {sid} is stopped (avatar_stopped); start a new session"
    )

    # nothing left: the compositor left and the room Greenroom created is gone
    async def empty() -> bool:
        return not await participants(lk, room)

    await wait_until(empty, "the room to be empty", timeout=30)
    record("avatar killed", "room empty", time.monotonic() - t_kill)
    assert await svc.open_sessions() == []
    assert not svc.app.state.services.sessions.live

    t0 = time.monotonic()
    await svc.start()
    record("avatar killed", "next session to first frame", time.monotonic() - t0)
