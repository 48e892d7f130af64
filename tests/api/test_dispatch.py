"""``GREENROOM_COMPOSITOR=dispatch``: the service starts each session's compositor, and the
built-in avatar, as a job on a ``greenroom worker`` (a separate process here), and drives it
over LiveKit only: the picture, a live background switch, speech and the stop all go through
the job, and what the user sees is checked in the composited frames."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from livekit import api as lkapi

from fixtures.worker import dump_job_stacks, running_worker
from greenroom.api import create_app
from greenroom.api.services import dispatched
from greenroom.api.services.dispatched import DispatchedCompositor
from greenroom.compositor import compositor_identity
from greenroom.livekit_server import LiveKitServer

from .support import make_settings, open_client
from .test_replicas import Replica, crash, replica, status, template
from .test_sessions import avatar_visible, close_to, corners, snapshot

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

SESSIONS = "/v2/streaming/sessions"
BLUE, ORANGE = (0, 68, 255), (255, 136, 0)
START_TIMEOUT = 300.0  # a job process on a loaded machine loads the keyer before it joins


@pytest.fixture
def app(data_dir: Path, livekit: LiveKitServer) -> FastAPI:
    return create_app(make_settings(data_dir, livekit, compositor="dispatch"), warm_up=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(app):
        yield c


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def stacks(self) -> str:
        """The worker's log with every job's thread stacks, for a failure message."""
        return dump_job_stacks(self.proc, self.log)


@pytest.fixture
def worker(livekit: LiveKitServer, tmp_path: Path) -> Iterator[Worker]:
    """A worker of this test's own (LiveKit hands jobs to any registered worker)."""
    log = tmp_path / "worker.log"
    with running_worker(livekit, log, max_sessions=2) as proc:
        yield Worker(proc, log)


async def local_template(c: httpx.AsyncClient, name: str, **extra: object) -> str:
    body = {"name": name, "provider": "local", "background": "#0044ff", **extra}
    r = await c.post("/v1/templates", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def participants(livekit: LiveKitServer, room: str) -> set[str]:
    async with lkapi.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        try:
            res = await lk.room.list_participants(lkapi.ListParticipantsRequest(room=room))
        except lkapi.TwirpError:
            return set()
    return {p.identity for p in res.participants}


async def until_status(c: httpx.AsyncClient, sid: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        body = dict((await c.get(f"{SESSIONS}/{sid}")).json())
        if body["status"] == "stopped" or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.5)


async def test_without_a_worker_the_start_says_what_is_missing(
    client: httpx.AsyncClient, livekit: LiveKitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker took the job: the start fails with the reason, and nothing is left."""
    monkeypatch.setattr(dispatched, "JOIN_TIMEOUT", 5.0)
    tid = await local_template(client, "no-worker")
    r = await client.post(SESSIONS, json={"template_id": tid}, timeout=120)
    assert r.status_code >= 500, r.text
    assert "greenroom worker" in r.json()["error"]["message"], r.text
    (failed,) = (await client.get(SESSIONS, params={"status": "failed"})).json()["sessions"]
    assert not await participants(livekit, failed["room"])


async def test_dispatched_session_end_to_end(
    client: httpx.AsyncClient, app: FastAPI, livekit: LiveKitServer, worker: Worker
) -> None:
    tid = await local_template(client, "dispatched", keying={"mode": "auto"})
    r = await client.post(SESSIONS, json={"template_id": tid}, timeout=START_TIMEOUT)
    assert r.status_code == 200, r.text + "\nworker log:\n" + worker.stacks()
    sid, room = r.json()["session_id"], r.json()["room"]
    live = app.state.services.sessions.live[sid]
    assert isinstance(live.compositor, DispatchedCompositor)  # not composited in this process

    # the picture: the avatar on the template's blue, read from the published track
    img = await snapshot(client, sid, timeout=START_TIMEOUT)
    assert all(close_to(c, BLUE, tol=25) for c in corners(img)), [
        np.median(c.reshape(-1, 3), axis=0) for c in corners(img)
    ]
    assert avatar_visible(img, BLUE)

    # a live switch reaches the job over LiveKit; a bad value is refused and changes nothing
    r = await client.put(f"{SESSIONS}/{sid}/background", json={"background": "#ff8800"})
    assert r.status_code == 200, r.text
    assert r.json()["background"] == "#ff8800"
    deadline = time.monotonic() + 60
    while not all(close_to(c, ORANGE, tol=25) for c in corners(await snapshot(client, sid))):
        assert time.monotonic() < deadline, "the switch never showed:\n" + worker.stacks()
        await asyncio.sleep(0.5)
    r = await client.put(f"{SESSIONS}/{sid}/background", json={"background": "#12345"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "background", r.text
    view = (await client.get(f"{SESSIONS}/{sid}")).json()
    assert view["background"] == "#ff8800"
    # the job says which keyer auto chose (the built-in avatar stands on a green screen)
    assert view["metrics"]["keyer"] == {"mode": "auto", "in_use": "chroma"}, view["metrics"]

    # speech goes through the job to the avatar it runs
    r = await client.post(f"{SESSIONS}/{sid}/speak", json={"text": "Hello from the worker"})
    assert r.status_code in (200, 202), r.text
    r = await client.post(f"{SESSIONS}/{sid}/interrupt")
    assert r.status_code in (200, 202), r.text

    # stop: the job leaves with its avatar, the room goes
    r = await client.delete(f"{SESSIONS}/{sid}")
    assert r.status_code == 200, r.text
    assert r.json()["stop_reason"] == "stopped_by_user"
    deadline = time.monotonic() + 60
    while await participants(livekit, room):
        assert time.monotonic() < deadline, await participants(livekit, room)
        await asyncio.sleep(0.5)


async def test_a_worker_killed_mid_session_ends_it_with_a_reason(
    client: httpx.AsyncClient,
    livekit: LiveKitServer,
    worker: Worker,
) -> None:
    """kill -9 of the worker running the job: the session stops by itself, truthfully."""
    tid = await local_template(client, "doomed")
    r = await client.post(SESSIONS, json={"template_id": tid}, timeout=START_TIMEOUT)
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    await snapshot(client, sid, timeout=START_TIMEOUT)
    os.killpg(worker.proc.pid, signal.SIGKILL)
    body = await until_status(client, sid, timeout=120)
    assert body["status"] == "stopped", body
    assert body["stop_reason"] in ("compositor_failed", "avatar_stopped"), body
    identity = compositor_identity(str(body.get("avatar_identity") or ""))
    assert identity not in await participants(livekit, str(body["room"]))


async def test_a_draining_worker_keeps_its_session_and_takes_no_new_one(
    client: httpx.AsyncClient,
    livekit: LiveKitServer,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM to the worker (a deploy replacing it): the running session goes on, a new one
    is not given to it, and the worker exits by itself once its session has ended."""
    tid = await local_template(client, "draining")
    r = await client.post(SESSIONS, json={"template_id": tid}, timeout=START_TIMEOUT)
    assert r.status_code == 200, r.text + "\n" + worker.stacks()
    sid = r.json()["session_id"]
    await snapshot(client, sid, timeout=START_TIMEOUT)

    os.kill(worker.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while "draining worker" not in worker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
        await asyncio.sleep(0.2)

    # the session is still live and still obeys
    r = await client.put(f"{SESSIONS}/{sid}/background", json={"background": "#ff8800"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 60
    while not all(close_to(c, ORANGE, tol=25) for c in corners(await snapshot(client, sid))):
        assert time.monotonic() < deadline, "the switch never showed:\n" + worker.stacks()
        await asyncio.sleep(0.5)

    # no new job for a draining worker: with no other worker the start says so
    monkeypatch.setattr(dispatched, "JOIN_TIMEOUT", 10.0)
    r = await client.post(SESSIONS, json={"template_id": tid}, timeout=120)
    assert r.status_code >= 500, r.text
    assert "greenroom worker" in r.json()["error"]["message"], r.text
    assert worker.proc.poll() is None  # still there for the running session

    r = await client.delete(f"{SESSIONS}/{sid}")
    assert r.status_code == 200, r.text
    assert worker.proc.wait(60) == 0, worker.log.read_text()[-3000:]


@asynccontextmanager
async def two_replicas(
    tmp_path: Path, livekit: LiveKitServer
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replicas A and B on one SQLite file, compositors dispatched."""
    db = f"sqlite:///{tmp_path / 'shared' / 'greenroom.db'}"
    (tmp_path / "shared").mkdir()
    async with (
        replica("replica-a", tmp_path / "a", livekit, db, compositor="dispatch") as a,
        replica("replica-b", tmp_path / "b", livekit, db, compositor="dispatch") as b,
    ):
        yield a, b


async def start_on(rep: Replica, worker: Worker) -> tuple[str, str]:
    """A built-in-avatar session started through ``rep``, once its picture is out."""
    tid = await template(rep, "kiosk")
    r = await rep.client.post(SESSIONS, json={"template_id": tid}, timeout=START_TIMEOUT)
    assert r.status_code == 200, r.text + "\n" + worker.stacks()
    sid, room = str(r.json()["session_id"]), str(r.json()["room"])
    await snapshot(rep.client, sid, timeout=START_TIMEOUT)
    return sid, room


async def test_a_dead_replica_s_dispatched_session_is_adopted_and_goes_on(
    tmp_path: Path, livekit: LiveKitServer, worker: Worker
) -> None:
    """Two API replicas on one database, compositors dispatched: replica A dies (as when its
    process is killed); its session's job runs on in the worker, so replica B takes the
    session over once A's lease has ended, and the session goes on: same room, B switches
    the background and stops it."""
    async with two_replicas(tmp_path, livekit) as (a, b):
        sid, room = await start_on(a, worker)
        job = compositor_identity(str((await status(a, sid))["avatar_identity"]))

        left = await crash(a.manager)
        died = time.monotonic()
        try:
            deadline = died + 120  # a hang bound: two lease lengths, on a loaded machine
            while sid not in b.manager.live:
                assert time.monotonic() < deadline, await status(b, sid)
                await asyncio.sleep(0.5)
            print(f"\nreplica B adopted dead A's session {time.monotonic() - died:.1f} s after")
            assert (await status(b, sid))["status"] == "started"
            assert job in await participants(livekit, room)  # the same job, never restarted

            r = await b.client.put(f"{SESSIONS}/{sid}/background", json={"background": "#ff8800"})
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 60
            while not all(
                close_to(c, ORANGE, tol=25) for c in corners(await snapshot(b.client, sid))
            ):
                assert time.monotonic() < deadline, "the switch never showed:\n" + worker.stacks()
                await asyncio.sleep(0.5)
            r = await b.client.delete(f"{SESSIONS}/{sid}")
            assert r.status_code == 200, r.text
            assert r.json()["stop_reason"] == "stopped_by_user"
        finally:
            for live in left:
                await live.compositor.detach()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while await participants(livekit, room):
            assert time.monotonic() < deadline, await participants(livekit, room)
            await asyncio.sleep(0.5)


async def test_any_replica_acts_on_a_dispatched_session(
    tmp_path: Path, livekit: LiveKitServer, worker: Worker
) -> None:
    """Replica B reaches the job of a session replica A holds over LiveKit: B switches the
    background (A reports it too), makes the avatar speak and stops the session; A, which
    holds it, records the stop with B's reason."""
    async with two_replicas(tmp_path, livekit) as (a, b):
        sid, room = await start_on(a, worker)
        assert sid not in b.manager.live  # A holds it

        r = await b.client.put(f"{SESSIONS}/{sid}/background", json={"background": "#ff8800"})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while not all(close_to(c, ORANGE, tol=25) for c in corners(await snapshot(b.client, sid))):
            assert time.monotonic() < deadline, "the switch never showed:\n" + worker.stacks()
            await asyncio.sleep(0.5)
        while (await status(a, sid))["background"] != "#ff8800":  # the holder reports it too
            assert time.monotonic() < deadline, await status(a, sid)
            await asyncio.sleep(0.5)
        r = await b.client.post(f"{SESSIONS}/{sid}/speak", json={"text": "Hello from B"})
        assert r.status_code in (200, 202), r.text

        r = await b.client.delete(f"{SESSIONS}/{sid}")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stopped", r.json()
        assert r.json()["stop_reason"] == "stopped_by_user", r.json()
        assert sid not in a.manager.live
        deadline = time.monotonic() + 60
        while await participants(livekit, room):
            assert time.monotonic() < deadline, await participants(livekit, room)
            await asyncio.sleep(0.5)
