"""Sessions under pressure: more requests than the limits allow, and a stalled database.

A burst of start requests beyond ``max_sessions`` (or ``max_sessions_per_key``) gets exactly
the allowed number of sessions and a clear 429 with ``Retry-After`` for the rest, with no row
left behind for them; a start that fails midway leaves a ``failed`` row and nothing else. A
database that holds its write lock for 2 s stalls only the call that writes: another
session's control calls are answered while the stall lasts (store calls run in worker
threads, off the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from livekit import api as lkapi
from sqlalchemy import event

from greenroom.api import create_app
from greenroom.avatars.base import AvatarSession, register_provider
from greenroom.errors import ProviderError
from greenroom.livekit_server import LiveKitServer

from . import disc_provider
from .support import make_settings, open_client
from .test_sessions import snapshot

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

SESSIONS = "/v2/streaming/sessions"
STALL = 2.0  # seconds the database holds its write lock

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def disc() -> disc_provider.DiscProvider:
    return disc_provider.register()


@contextlib.asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    clients = open_client(app)
    try:
        yield await anext(clients)
    finally:
        await clients.aclose()


def service(
    data_dir: Path, lk: LiveKitServer, **extra: object
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return client_for(create_app(make_settings(data_dir, lk, **extra), warm_up=False))


async def _template(c: httpx.AsyncClient) -> str:
    r = await c.post("/v1/templates", json={"name": "load", "provider": "disc"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_burst_beyond_the_process_limit_gets_429_with_retry_after(
    data_dir: Path, livekit: LiveKitServer, disc: disc_provider.DiscProvider
) -> None:
    async with service(data_dir, livekit, max_sessions=2, max_sessions_per_key=10) as c:
        tpl = await _template(c)
        answers = await asyncio.gather(
            *(c.post(SESSIONS, json={"template_id": tpl}) for _ in range(5))
        )
        ok = [r for r in answers if r.status_code == 200]
        refused = [r for r in answers if r.status_code == 429]
        assert (len(ok), len(refused)) == (2, 3), [(r.status_code, r.text) for r in answers]
        for r in refused:
            err = r.json()["error"]
            assert err["code"] == "too_many_sessions"
            assert "at most 2 sessions at once" in err["message"]
            assert "GREENROOM_MAX_SESSIONS" in err["message"]
            assert 1 <= int(r.headers["Retry-After"]) <= 60
        # the refused requests left nothing behind
        listed = (await c.get(SESSIONS)).json()["sessions"]
        assert sorted(s["session_id"] for s in listed) == sorted(r.json()["session_id"] for r in ok)
        assert all(s["status"] == "started" for s in listed)

        # a slot frees when a session stops
        first = ok[0].json()["session_id"]
        assert (await c.delete(f"{SESSIONS}/{first}")).status_code == 200
        again = await c.post(SESSIONS, json={"template_id": tpl})
        assert again.status_code == 200, again.text


async def test_the_per_key_limit_is_its_own(
    data_dir: Path, livekit: LiveKitServer, disc: disc_provider.DiscProvider
) -> None:
    async with service(data_dir, livekit, max_sessions=5, max_sessions_per_key=1) as c:
        tpl = await _template(c)
        first = await c.post(SESSIONS, json={"template_id": tpl})
        assert first.status_code == 200, first.text
        second = await c.post(SESSIONS, json={"template_id": tpl})
        assert second.status_code == 429
        assert "this API key may run at most 1 sessions" in second.json()["error"]["message"]
        assert "Retry-After" in second.headers


class WriteLock:
    """Another client of the database takes its write lock and keeps it at least ``seconds``
    and until ``release`` is set (at most ``longest`` seconds: a slow machine stretches the
    stall instead of closing the window the test watches); the times it held it are kept."""

    def __init__(self, db: Path, seconds: float, longest: float = 60.0) -> None:
        self.db = db
        self.seconds = seconds
        self.longest = longest
        self.locked = threading.Event()
        self.release = threading.Event()
        self.held_from = self.held_until = 0.0

    def hold(self) -> None:
        con = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        try:
            con.execute("BEGIN IMMEDIATE")
            self.held_from = time.perf_counter()
            self.locked.set()
            time.sleep(self.seconds)
            self.release.wait(self.longest - self.seconds)
            self.held_until = time.perf_counter()
            con.execute("COMMIT")
        finally:
            con.close()


async def test_a_stalled_database_does_not_delay_another_sessions_control_calls(
    data_dir: Path, livekit: LiveKitServer, disc: disc_provider.DiscProvider
) -> None:
    """Session A's background switch writes to a database that stalls for 2 s. Once A is
    waiting on it, session B's control calls are still sent and answered before the stall
    ends: they do not wait for it at all. (With store calls on the event loop, nothing could
    even be sent until the stall ended.)"""
    app = create_app(make_settings(data_dir, livekit), warm_up=False)
    a_writing = threading.Event()  # set in whichever thread runs A's write

    def on_statement(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("UPDATE SESSIONS") and switching.is_set():
            a_writing.set()

    switching = threading.Event()
    event.listen(app.state.services.repo.engine, "before_cursor_execute", on_statement)
    async with client_for(app) as c:
        tpl = await _template(c)
        a = (await c.post(SESSIONS, json={"template_id": tpl})).json()["session_id"]
        b = (await c.post(SESSIONS, json={"template_id": tpl})).json()["session_id"]
        await snapshot(c, a)
        await snapshot(c, b)
        await asyncio.sleep(1)  # the first-frame records are written

        calls: list[tuple[float, float]] = []  # B's interrupt calls: (sent, answered)

        async def control_b() -> None:
            t0 = time.perf_counter()
            r = await c.post(f"{SESSIONS}/{b}/interrupt")
            assert r.status_code == 200, r.text
            calls.append((t0, time.perf_counter()))

        stall = WriteLock(data_dir / "greenroom.db", STALL)
        holder = asyncio.ensure_future(asyncio.to_thread(stall.hold))
        await asyncio.to_thread(stall.locked.wait, 10)
        switching.set()
        switch_a = asyncio.ensure_future(
            c.put(f"{SESSIONS}/{a}/background", json={"background": "#ff8800", "transition": 0})
        )
        while not a_writing.is_set() and not switch_a.done():
            await asyncio.sleep(0.01)
        a_waits = time.perf_counter()
        while not switch_a.done():
            await control_b()
            if not stall.release.is_set() and a_waits <= calls[-1][0]:
                stall.release.set()  # one of B's calls went through while A waited
            await asyncio.sleep(0.05)
        stall.release.set()
        r = await switch_a
        a_answered = time.perf_counter()
        await holder
        assert r.status_code == 200, r.text
        assert a_writing.is_set()
        # A waited for the database ...
        assert a_answered >= stall.held_until
        # ... while B's calls were sent and answered, A waiting, the database still stalled
        inside = [(t0, t1) for t0, t1 in calls if a_waits <= t0 and t1 < stall.held_until]
        assert inside, (a_waits, stall.held_until, calls)
        ms = [round((t1 - t0) * 1000) for t0, t1 in inside]
        log.info("B's control calls while A waited on the stalled database: %s ms", ms)


class BrokenProvider:
    """An avatar vendor that fails after a while: by then room and compositor are up."""

    name = "broken"

    async def start(self, target: object, **options: object) -> AvatarSession:
        await asyncio.sleep(1.0)
        raise ProviderError("broken", "the vendor refused the session", http_status=500)


async def test_a_start_that_fails_midway_leaves_nothing_half_done(
    data_dir: Path, livekit: LiveKitServer
) -> None:
    register_provider("broken", BrokenProvider())  # type: ignore[arg-type]
    app = create_app(make_settings(data_dir, livekit, max_sessions=1), warm_up=False)
    async with client_for(app) as c:
        r = await c.post("/v1/templates", json={"name": "broken", "provider": "broken"})
        assert r.status_code == 201, r.text
        r = await c.post(SESSIONS, json={"template_id": r.json()["id"]})
        assert r.status_code == 502, r.text
        assert r.json()["error"]["code"] == "provider_error"
        (row,) = (await c.get(SESSIONS)).json()["sessions"]
        assert (row["status"], row["stop_reason"]) == ("failed", "start_failed")
        assert "the vendor refused the session" in row["error"]
        # the room Greenroom made for it is gone, nothing runs, its slot is free again
        async with lkapi.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as api:
            names = {x.name for x in (await api.room.list_rooms(lkapi.ListRoomsRequest())).rooms}
        assert row["room"] not in names
        manager = app.state.services.sessions
        assert manager.live == {} and len(manager.slots) == 0
