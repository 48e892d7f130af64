"""The whole scale-out setup in one test: Redis, two LiveKit nodes, two ``greenroom worker``
processes and two API replicas on one database, compositors dispatched.

A session is started through replica A (talking to node A); its compositor and built-in
avatar run as a job on whichever worker LiveKit picks. Both replicas see the composited
picture, each through its own node (replica B's snapshot subscribes through node B). Replica
B switches the background. Then the worker running the job is killed with ``kill -9``: the
session ends by itself with a reason, nothing is left in the room or running, and the next
session (started through replica B) runs on the surviving worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import api

from api.test_dispatch import ORANGE, START_TIMEOUT, Worker
from api.test_replicas import replica, status, template
from api.test_sessions import avatar_visible, close_to, corners, snapshot
from fixtures.worker import running_worker

from .conftest import Node

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

BLUE = (0, 68, 255)


@pytest.fixture
def two_workers(two_nodes: tuple[Node, Node], tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    """One worker registered through each node."""
    a, b = two_nodes
    with (
        running_worker(a.server, tmp_path / "worker-a.log", max_sessions=2) as wa,
        running_worker(b.server, tmp_path / "worker-b.log", max_sessions=2) as wb,
    ):
        yield Worker(wa, tmp_path / "worker-a.log"), Worker(wb, tmp_path / "worker-b.log")


async def people(node: Node, room: str) -> set[str]:
    async with node.api() as lk:
        try:
            res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        except api.TwirpError:
            return set()
    return {p.identity for p in res.participants}


async def test_session_across_nodes_workers_and_replicas(
    two_nodes: tuple[Node, Node], two_workers: tuple[Worker, Worker], tmp_path: Path
) -> None:
    node_a, node_b = two_nodes
    db = f"sqlite:///{tmp_path / 'shared' / 'greenroom.db'}"
    (tmp_path / "shared").mkdir()
    async with (
        replica("replica-a", tmp_path / "a", node_a.server, db, compositor="dispatch") as a,
        replica("replica-b", tmp_path / "b", node_b.server, db, compositor="dispatch") as b,
    ):
        tid = await template(a, "scaled")
        r = await a.client.post(
            "/v2/streaming/sessions", json={"template_id": tid}, timeout=START_TIMEOUT
        )
        assert r.status_code == 200, r.text + "\n".join(w.stacks()[-3000:] for w in two_workers)
        sid, room = r.json()["session_id"], r.json()["room"]

        # the picture through node A (replica A) and through node B (replica B)
        for rep in (a, b):
            img = await snapshot(rep.client, sid, timeout=START_TIMEOUT)
            assert all(close_to(c, BLUE, tol=25) for c in corners(img))
            assert avatar_visible(img, BLUE)

        # replica B switches it; both nodes' viewers see it
        r = await b.client.put(
            f"/v2/streaming/sessions/{sid}/background", json={"background": "#ff8800"}
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while (s := await status(a, sid))["status"] == "started" and not all(
            close_to(c, ORANGE, tol=25) for c in corners(await snapshot(a.client, sid))
        ):
            assert time.monotonic() < deadline, "the switch never reached node A's viewers"
            await asyncio.sleep(0.5)
        assert s["status"] == "started", s

        # kill -9 the worker that runs the job: the session ends by itself, with a reason
        (running,) = [w for w in two_workers if "received job request" in w.log.read_text()]
        os.killpg(running.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while (s := await status(a, sid))["status"] != "stopped":
            assert time.monotonic() < deadline, s
            await asyncio.sleep(0.5)
        assert s["stop_reason"] in ("compositor_failed", "avatar_stopped"), s
        assert (await status(b, sid))["status"] == "stopped"  # one truth on both replicas
        deadline = time.monotonic() + 60
        while left := await people(node_b, room):
            assert time.monotonic() < deadline, left
            await asyncio.sleep(0.5)
        running.proc.wait(10)
        alive = subprocess.run(  # the worker's job processes went with it (zombies aside)
            ["pgrep", "-g", str(running.proc.pid), "-r", "R,S,D,T"], capture_output=True, text=True
        )
        assert alive.returncode == 1, alive.stdout

        # the surviving worker takes the next session, started through the other replica
        r = await b.client.post(
            "/v2/streaming/sessions", json={"template_id": tid}, timeout=START_TIMEOUT
        )
        assert r.status_code == 200, r.text
        img = await snapshot(a.client, r.json()["session_id"], timeout=START_TIMEOUT)
        assert avatar_visible(img, BLUE)
        (survivor,) = [w for w in two_workers if w is not running]
        assert "received job request" in survivor.log.read_text()
        r = await a.client.delete(f"/v2/streaming/sessions/{r.json()['session_id']}")
        assert r.status_code == 200, r.text
