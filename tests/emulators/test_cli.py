"""``greenroom emulate``: the command serves the emulator on loopback with env-configured faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from greenroom.livekit_server import LiveKitServer, free_port

pytestmark = pytest.mark.livekit

GREENROOM = os.path.join(os.path.dirname(sys.executable), "greenroom")


def test_greenroom_emulate_heygen(livekit: LiveKitServer) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GREENROOM_LIVEKIT_URL": livekit.url,
        "GREENROOM_EMULATOR_SUNSET": "1",
    }
    proc = subprocess.Popen(
        [GREENROOM, "emulate", "heygen", "--port", str(port), "--api-key", "k"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/streaming.new", json={}, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "emulator did not come up"
                time.sleep(0.2)
        assert r.status_code == 410 and "endpoint_sunset" in r.json()["message"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f"GREENROOM_HEYGEN_BASE_URL=http://127.0.0.1:{port}" in out
