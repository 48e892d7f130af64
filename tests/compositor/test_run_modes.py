"""Worker mode: ``greenroom worker`` in a subprocess, an explicit dispatch through the
LiveKit API, and the composited track appearing at a viewer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import api

from fixtures.worker import running_worker
from greenroom.compositor import compositor_identity
from greenroom.compositor.worker import AGENT_NAME
from greenroom.livekit_server import LiveKitServer

from .conftest import FIRST_FRAME, Target, Viewer
from .test_resilience import BLUE, center_is

pytestmark = pytest.mark.livekit


@pytest.fixture(scope="module")
def worker_process(livekit: LiveKitServer, tmp_path_factory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with running_worker(livekit, log):
        yield log


async def test_dispatched_job_publishes_composited_track(
    livekit: LiveKitServer, target: Target, viewer: Viewer, synthetic_avatar, worker_process: Path
) -> None:
    await synthetic_avatar("avatar-w", motion=False, flash=False, audio=False)
    async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name=AGENT_NAME,
                room=target.room,
                metadata=json.dumps({"avatar_identity": "avatar-w", "background": "#0044ff"}),
            )
        )
        identity = compositor_identity("avatar-w")
        try:
            frame = await viewer.until(identity, center_is((224, 150, 110)), timeout=FIRST_FRAME)
        except TimeoutError:
            raise AssertionError(
                "no composited frame; worker log:\n" + worker_process.read_text()[-4000:]
            ) from None
        assert center_is(BLUE)(type(frame)(frame.rgb[:60, :60], None, 0, ""))
        p = viewer.room.remote_participants[identity]
        assert p.attributes["greenroom.role"] == "compositor"
        assert p.attributes["greenroom.avatar"] == "avatar-w"


async def test_greenroom_compositor_command(
    livekit: LiveKitServer, target: Target, viewer: Viewer, synthetic_avatar, tmp_path: Path
) -> None:
    """``greenroom compositor`` in its own process: composites, then stops cleanly on SIGINT."""
    await synthetic_avatar("avatar-cli", motion=False, flash=False, audio=False)
    log = tmp_path / "compositor.log"
    env = {
        **os.environ,
        "GREENROOM_LIVEKIT_URL": livekit.url,
        "GREENROOM_LIVEKIT_API_KEY": livekit.api_key,
        "GREENROOM_LIVEKIT_API_SECRET": livekit.api_secret,
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-c", "from greenroom.cli import main; main()", "compositor",
                "--room", target.room, "--avatar", "avatar-cli", "--background", "#0044ff",
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        identity = compositor_identity("avatar-cli")
        try:
            await viewer.until(identity, center_is((224, 150, 110)), timeout=FIRST_FRAME)
        except TimeoutError:
            raise AssertionError("no frame; log:\n" + log.read_text()[-4000:]) from None
        frame = await viewer.frame(identity)
        assert center_is(BLUE)(type(frame)(frame.rgb[:60, :60], None, 0, ""))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()[-2000:]
