"""Two API replicas on one database (an SQLite file, or PostgreSQL) share the sessions.

Each replica is a full app (its own session manager, heartbeat and sweep) with its own data
folder, as on two machines, and a short lease. A session started on replica A is left alone
by replica B: B reports it, and refuses to act on it, naming A. When A dies (its heartbeat,
sweep and session tasks end, nothing is stopped or written, as when the process is killed),
B's sweep closes the session once A's lease has expired (``service_restarted``) and deletes
its room. A clean shutdown and restart of A never touches B's sessions.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from greenroom.api import create_app
from greenroom.api.services.live import LiveSession
from greenroom.api.services.sessions import SessionManager
from greenroom.errors import NotFound
from greenroom.livekit_server import LiveKitServer

from . import disc_provider
from .support import AUTH, make_settings
from .test_sessions import room_names, snapshot

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

LEASE = 6.0  # s: short for the test, yet three missed heartbeats on a loaded machine
SESSIONS = "/v2/streaming/sessions"


@dataclass
class Replica:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def manager(self) -> SessionManager:
        manager: SessionManager = self.app.state.services.sessions
        return manager


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'shared' / 'greenroom.db'}"


@pytest.fixture
def local() -> None:
    from greenroom.avatars import get_provider

    try:
        get_provider("local")
    except NotFound:
        pytest.skip("the built-in local avatar provider is not available in this tree")


@asynccontextmanager
async def replica(
    name: str,
    folder: Path,
    livekit: LiveKitServer,
    database_url: str,
    lease: float = LEASE,
    **extra: object,
) -> AsyncIterator[Replica]:
    """A running replica named ``name`` with its own data folder (one machine); ``extra``:
    more settings."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = make_settings(
        folder, livekit, replica_id=name, lease_seconds=lease, database_url=database_url, **extra
    )
    app = create_app(settings, warm_up=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://greenroom.test", headers=AUTH, timeout=60
        ) as client:
            yield Replica(app, client)


async def start(r: Replica, template_id: str) -> dict[str, object]:
    res = await r.client.post(SESSIONS, json={"template_id": template_id})
    assert res.status_code == 200, res.text
    return dict(res.json())


async def template(r: Replica, name: str, provider: str = "local") -> str:
    res = await r.client.post(
        "/v1/templates", json={"name": name, "provider": provider, "background": "#0044ff"}
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


async def status(r: Replica, sid: object) -> dict[str, object]:
    res = await r.client.get(f"{SESSIONS}/{sid}")
    assert res.status_code == 200, res.text
    return dict(res.json())


async def wait_stopped(r: Replica, sid: object, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout  # a hang bound, not a measure
    while (s := await status(r, sid))["status"] != "stopped":
        assert time.monotonic() < deadline, f"still {s['status']}"
        await asyncio.sleep(0.5)
    return s


async def crash(m: SessionManager) -> list[LiveSession]:
    """What a killed replica leaves behind: no heartbeat, no sweep, its sessions' watchers
    gone, nothing stopped and nothing written. Returns the sessions it was running (their
    avatar and compositor are still in the room)."""
    m.watch.closing = True
    await m.leases.aclose()
    left = list(m.live.values())
    for live in left:
        live.stopping = True  # what happens to its parts now is nobody's business here
        await live.cancel_tasks()
    m.live.clear()
    m.owned.clear()
    return left


async def test_a_session_is_left_to_its_replica_until_that_replica_dies(
    tmp_path: Path, livekit: LiveKitServer, database_url: str, local: None
) -> None:
    async with (
        replica("replica-a", tmp_path / "a", livekit, database_url) as a,
        replica("replica-b", tmp_path / "b", livekit, database_url) as b,
    ):
        started = await start(a, await template(a, "kiosk"))
        sid, room = started["session_id"], str(started["room"])
        await snapshot(a.client, str(sid))  # A runs it: a composited frame

        # B leaves it alone, reports it, and refuses to act on it, naming A
        assert await b.manager.reconcile() == []
        assert (await status(b, sid))["status"] == "started"
        for method, path, body in [
            ("PUT", "background", {"background": "#ff0000"}),
            ("POST", "speak", {"text": "hello"}),
            ("DELETE", "", None),
        ]:
            url = f"{SESSIONS}/{sid}/{path}".rstrip("/")
            res = await b.client.request(method, url, json=body)
            assert res.status_code == 409, res.text
            assert "replica-a" in res.json()["error"]["message"], res.text
        assert (await status(a, sid))["status"] == "started"
        assert (await status(a, sid))["background"] == "#0044ff"

        # A dies; B's sweep closes the session once A's lease has ended
        left = await crash(a.manager)
        died = time.monotonic()
        lease_end = (await asyncio.to_thread(b.manager.repo.get_session, str(sid))).lease_expires_at
        assert lease_end is not None
        try:
            s = await wait_stopped(b, sid, timeout=120)
            print(
                f"\nreplica B closed dead A's session {time.monotonic() - died:.1f} s after A "
                f"died (lease {LEASE:.0f} s, load {os.getloadavg()[0]:.1f})"
            )
            assert s["stop_reason"] == "service_restarted", s
            row = await asyncio.to_thread(b.manager.repo.get_session, str(sid))
            assert row.stopped_at is not None and row.stopped_at >= lease_end
            assert room not in await room_names(livekit)
            assert (await status(a, sid))["status"] == "stopped"  # one truth, on both
        finally:
            for live in left:
                await live.compositor.aclose()
                await live.avatar.aclose()


async def test_a_clean_restart_of_one_replica_leaves_the_other_s_sessions_alone(
    tmp_path: Path, livekit: LiveKitServer, database_url: str, local: None
) -> None:
    async with replica("replica-b", tmp_path / "b", livekit, database_url) as b:
        tpl = await template(b, "kiosk")
        theirs = await start(b, tpl)
        async with replica("replica-a", tmp_path / "a", livekit, database_url) as a:
            mine = await start(a, tpl)
            await snapshot(a.client, str(mine["session_id"]))
        # A stopped its own session on the way out, and only that one
        s = await status(b, mine["session_id"])
        assert (s["status"], s["stop_reason"]) == ("stopped", "service_stopped"), s
        assert mine["room"] not in await room_names(livekit)
        assert (await status(b, theirs["session_id"]))["status"] == "started"

        async with replica("replica-a", tmp_path / "a", livekit, database_url) as again:
            assert await again.manager.reconcile() == []
            assert (await status(again, theirs["session_id"]))["status"] == "started"
            res = await again.client.put(
                f"{SESSIONS}/{theirs['session_id']}/background", json={"background": "#ff0000"}
            )
            assert res.status_code == 409 and "replica-b" in res.json()["error"]["message"]
        assert str(theirs["session_id"]) in b.manager.live
        await snapshot(b.client, str(theirs["session_id"]))  # its picture goes on
        assert theirs["room"] in await room_names(livekit)


async def test_a_dead_replica_s_session_can_be_deleted_once_its_lease_ended(
    tmp_path: Path, livekit: LiveKitServer, database_url: str
) -> None:
    """DELETE on another replica closes the row once the lease is over (B's own sweep is
    slow here, so the DELETE is what closes it)."""
    disc_provider.register()
    async with (
        replica("replica-a", tmp_path / "a", livekit, database_url) as a,
        replica("replica-b", tmp_path / "b", livekit, database_url, lease=600) as b,
    ):
        started = await start(a, await template(a, "disc", provider="disc"))
        sid = str(started["session_id"])
        left = await crash(a.manager)
        try:
            deadline = time.monotonic() + 120  # a hang bound: wait for the lease to end
            while True:
                res = await b.client.delete(f"{SESSIONS}/{sid}")
                if res.status_code != 409:
                    break
                assert "replica-a" in res.json()["error"]["message"], res.text
                assert time.monotonic() < deadline, "the lease never ended"
                await asyncio.sleep(0.5)
            assert res.status_code == 200, res.text
            assert (res.json()["status"], res.json()["stop_reason"]) == (
                "stopped",
                "stopped_by_user",
            )
            assert started["room"] not in await room_names(livekit)
        finally:
            for live in left:
                await live.compositor.aclose()
                await live.avatar.aclose()


async def test_a_replica_whose_lease_lapsed_gives_up_the_session_another_took(
    tmp_path: Path, livekit: LiveKitServer, database_url: str
) -> None:
    """A's renewals stop getting through (as when A cannot reach the database) for longer
    than the lease: B takes the session over and closes it. A then closes its avatar and
    compositor and leaves the row as B wrote it."""
    disc_provider.register()
    async with (
        replica("replica-a", tmp_path / "a", livekit, database_url) as a,
        replica("replica-b", tmp_path / "b", livekit, database_url) as b,
    ):
        started = await start(a, await template(a, "disc", provider="disc"))
        sid = str(started["session_id"])
        await snapshot(a.client, sid)
        live = a.manager.live[sid]
        await a.manager.leases.aclose()  # no more renewals from A
        s = await wait_stopped(b, sid, timeout=120)
        assert s["stop_reason"] == "service_restarted", s
        # A hears of it from its heartbeat, once that gets through again, or sooner from the
        # room's deletion; either way it closes its parts and writes nothing
        await a.manager.leases.renew()
        deadline = time.monotonic() + 60  # a hang bound
        while sid in a.manager.live or sid in a.manager.owned:
            assert time.monotonic() < deadline, "A still runs the session"
            await asyncio.sleep(0.2)
        assert str(live.avatar.state) == "stopped" and live.compositor.closed
        row = await asyncio.to_thread(a.manager.repo.get_session, sid)
        assert (row.status, row.stop_reason, row.owner) == (
            "stopped",
            "service_restarted",
            "replica-b",
        )
        assert started["room"] not in await room_names(livekit)
