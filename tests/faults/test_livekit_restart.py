"""The LiveKit server is killed (SIGKILL) mid-session and started again on the same port.

A dedicated server, so the rest of the suite never sees the outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from greenroom.config import get_settings
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

from .conftest import (
    BLUE,
    Service,
    corner_close_to,
    open_service,
    participants,
    record,
    viewer_frame,
    wait_until,
)

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

DOWN_FOR = 2.0  # seconds the server stays dead before it is started again


@pytest.fixture
def own_livekit(tmp_path: Path) -> Iterator[list[LiveKitServer]]:
    """A LiveKit server for this test alone; the list holds the one running now."""
    binary = ensure_binary(get_settings().cache_dir)
    servers = [LiveKitServer.start(binary=binary, port=free_port(), log_path=tmp_path / "lk.log")]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
async def lk_service(data_dir: Path, own_livekit: list[LiveKitServer]) -> AsyncIterator[Service]:
    async for s in open_service(data_dir, own_livekit[0]):
        yield s


async def test_livekit_killed_and_restarted(
    lk_service: Service, own_livekit: list[LiveKitServer], tmp_path: Path
) -> None:
    svc, old = lk_service, own_livekit[0]
    started = await svc.start()
    sid, room = started["session_id"], started["room"]
    ours = {started["avatar_identity"], started["compositor_identity"]}
    assert await participants(old, room) == ours

    assert old.process is not None
    old.process.kill()  # SIGKILL: no goodbye to anyone
    old.process.wait(10)
    t_kill = time.monotonic()
    await asyncio.sleep(DOWN_FOR)
    port = int(old.url.rsplit(":", 1)[1])
    binary = ensure_binary(get_settings().cache_dir)
    new = await asyncio.to_thread(
        LiveKitServer.start, binary=binary, port=port, log_path=tmp_path / "lk.log"
    )
    own_livekit.append(new)
    t_back = time.monotonic()

    # Either the session comes back by itself (both participants rejoin the restarted
    # server and frames flow again), or it ends saying why, leaving nothing behind.
    async def settled() -> dict | None:
        s = await svc.session(sid)
        if s["status"] != "started":
            return s
        if await participants(new, room) == ours and s["metrics"]:
            return s
        return None

    s = await wait_until(settled, "the session to recover or stop", timeout=120, every=0.5)
    recovered = time.monotonic()
    print(f"\nafter the restart: status {s['status']}, stop_reason {s['stop_reason']}")
    if s["status"] == "started":
        record(
            "LiveKit kill -9 + restart", "session back (both rejoined, frames)", recovered - t_back
        )
        # the avatar's frames reach the compositor again, and a viewer joining the
        # restarted server with the session's token sees the composited picture
        before = (await svc.session(sid))["metrics"]["frames_in"]
        await wait_until(lambda: _frames_in_above(svc, sid, before), "avatar frames", 30)
        img = await viewer_frame(new, started["access_token"], room, started["compositor_identity"])
        assert corner_close_to(img, BLUE), img[:8, :8].reshape(-1, 3).mean(0)
        record("LiveKit kill -9 + restart", "viewer sees the picture", time.monotonic() - t_back)
        assert await participants(new, room) == ours  # exactly once each, no ghosts
        r = await svc.client.delete(f"/v2/streaming/sessions/{sid}")
        assert r.status_code == 200, r.text
    else:
        record("LiveKit kill -9 + restart", "session ended, reason given", recovered - t_kill)
        assert s["status"] == "stopped"
        assert s["stop_reason"] == "livekit_unreachable", s
    assert await wait_until(
        lambda: _empty(new, room), "the room to be empty on the restarted server", timeout=30
    )
    assert await svc.open_sessions() == []

    # and the service keeps working on the restarted server: a new session starts
    t0 = time.monotonic()
    again = await svc.start()
    record("LiveKit kill -9 + restart", "next session to first frame", time.monotonic() - t0)
    assert await participants(new, again["room"]) == {
        again["avatar_identity"],
        again["compositor_identity"],
    }


async def _frames_in_above(svc: Service, sid: str, before: int) -> bool:
    return (await svc.session(sid))["metrics"]["frames_in"] > before


async def _empty(lk: LiveKitServer, room: str) -> bool:
    return not await participants(lk, room)
