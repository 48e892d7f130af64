"""The LiveKit connection drops and returns.

Short outages are bridged by the SDK itself (same connection, resumed). When the SDK
gives up (about 30 s without a server) or the server announces its shutdown, the
compositor rejoins with a fresh connection and backoff; when that fails too it ends
itself with a reason and the process carries on. This test takes up to two minutes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from greenroom.compositor import Compositor, CompositorOptions
from greenroom.compositor.synthetic import DiscScene, SyntheticAvatar
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

from .conftest import FIRST_FRAME, Target

pytestmark = [pytest.mark.livekit, pytest.mark.slow]


async def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def _avatar(server: LiveKitServer, room: str) -> SyntheticAvatar:
    av = SyntheticAvatar(scene=DiscScene(motion=False), flash=False, audio=False)
    return await av.start(server.url, server.api_key, server.api_secret, room, "avatar-x")


async def test_connection_drops_rejoins_and_finally_gives_up(tmp_path) -> None:
    port, binary = free_port(), ensure_binary()

    def serve(n: int) -> LiveKitServer:
        return LiveKitServer.start(binary=binary, port=port, log_path=tmp_path / f"lk{n}.log")

    server = serve(1)
    target = Target(server.url, server.api_key, server.api_secret, "reconnect-room")
    comp = await Compositor.start(
        target,
        "avatar-x",
        "#0044ff",
        CompositorOptions(stats_interval=0, reconnect_attempts=4, reconnect_backoff=(0.5, 2.0)),
    )
    avatars = [await _avatar(server, target.room)]
    try:
        await comp.wait_first_frame(FIRST_FRAME)

        # 1. a short outage (a restart): the SDK resumes, or on SERVER_SHUTDOWN the
        #    compositor rejoins at once; either way frames come again
        server.stop(timeout=1)
        server = serve(2)
        out = comp.metrics()["frames_out"]
        await asyncio.sleep(2)
        if not avatars[-1].room.isconnected():  # the test avatar has no rejoin logic
            avatars.append(await _avatar(server, target.room))
        await _wait(lambda: comp.metrics()["frames_out"] > out + 30, 60, "frames after resume")
        first_room = comp.room

        # 2. an outage: the compositor rejoins on a new connection
        server.stop(timeout=1)
        await _wait(lambda: comp.room is not first_room, 90, "SDK giving up")
        server = serve(3)
        await _wait(lambda: comp.room is not None and comp.room.isconnected(), 60, "rejoin")
        assert not comp.closed
        out = comp.metrics()["frames_out"]
        avatars.append(await _avatar(server, target.room))
        await _wait(lambda: comp.metrics()["frames_out"] > out + 30, 60, "frames after rejoin")

        # 3. the server is gone for good: the compositor ends itself, with a reason
        server.stop(timeout=1)
        reason = await asyncio.wait_for(comp.wait_closed(), timeout=120)
        assert "could not rejoin after 4 attempts" in reason, reason
    finally:
        await comp.aclose()
        for av in avatars:
            await av.aclose()
        server.stop(timeout=1)
