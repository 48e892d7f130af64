"""``examples/agents_background.py`` (the code ``docs/quickstart-agents.md`` shows) run as
it is: a LiveKit Agents worker in its own process, dispatched into a room, with the official
LiveAvatar plugin pointed at our emulator. The viewer sees the avatar on the example's
background; a backend participant switches it over the RPC; stopping the worker ends it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import api, rtc
from PIL import Image

from greenroom.avatars import RoomTarget
from greenroom.compositor import ATTR_BACKGROUND, RPC_FORBIDDEN, RPC_SET_BACKGROUND
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve
from greenroom.livekit_server import LiveKitServer

from .conftest import Viewer, is_background, wait_for

pytestmark = pytest.mark.livekit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents_background.py"
ORANGE = (240, 128, 32)
BLUE = (0, 68, 255)


@pytest.fixture
def office(tmp_path: Path) -> Path:
    path = tmp_path / "office.jpg"
    Image.new("RGB", (1280, 720), ORANGE).save(path, quality=95)
    return path


def _worker(livekit: LiveKitServer, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "dev"],
            env={**os.environ, **env},
            cwd=log.parent,  # the worker's own folder, as a user would run it
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "registered worker" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not register:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


async def _switch(backend: rtc.Room, agent: str, background: str) -> str:
    """The RPC, retried while the agent has not yet seen the backend join (an unknown
    caller gets no more than a viewer: refused)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await backend.local_participant.perform_rpc(
                destination_identity=agent,
                method=RPC_SET_BACKGROUND,
                payload=json.dumps({"background": background, "transition": 0.2}),
            )
        except rtc.RpcError as exc:
            if exc.code != RPC_FORBIDDEN or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.timeout(600)  # a worker, a job process and a vendor session on a loaded machine
async def test_the_example_app(
    livekit: LiveKitServer, target: RoomTarget, viewer: Viewer, office: Path, tmp_path: Path
) -> None:
    cfg = EmulatorConfig(
        livekit=LiveKitAccess(target.url, target.api_key, target.api_secret), api_key="dev"
    )
    async with serve(liveavatar_emu.create_app(cfg, LocalBackend())) as url:
        env = {
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": livekit.api_secret,
            "LIVEAVATAR_API_URL": f"{url}/v1/sessions",
            "LIVEAVATAR_API_KEY": "dev",
            "LIVEAVATAR_AVATAR_ID": "anna",
            "BACKGROUND": str(office),
        }
        log = tmp_path / "worker.log"
        workers = _worker(livekit, env, log)
        proc = next(workers)
        try:
            async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
                await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(agent_name="presenter", room=target.room)
                )
            try:
                await wait_for(viewer.compositors, timeout=120)
                agent = viewer.compositors()[0].identity
                await viewer.until(agent, is_background(ORANGE), timeout=90)
            except TimeoutError:
                raise AssertionError(
                    "no composited avatar; log:\n" + log.read_text()[-4000:]
                ) from None

            backend = rtc.Room()  # the app's backend: any participant allowed to publish
            await backend.connect(target.url, target.agent_token("backend"))
            try:
                answer = await _switch(backend, agent, "#0044ff")
            finally:
                await backend.disconnect()
            assert json.loads(answer)["background"] == {"kind": "color", "color": "#0044ff"}
            await viewer.until(agent, is_background(BLUE), timeout=60)
            p = viewer.room.remote_participants[agent]
            assert json.loads(p.attributes[ATTR_BACKGROUND])["color"] == "#0044ff"

            os.killpg(proc.pid, signal.SIGTERM)  # the job ends: its shutdown closes the handle
            await wait_for(lambda: agent not in viewer.room.remote_participants, timeout=60)
            assert proc.wait(60) == 0
        finally:
            next(workers, None)
