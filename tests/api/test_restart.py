"""Restarting the service mid-session: afterwards it reports the truth.

A real ``greenroom serve`` process runs a session and is killed (SIGKILL: no goodbye). The
next process finds the session open in the database, marks it stopped with reason
``service_restarted`` and deletes the room Greenroom created. A graceful stop (SIGTERM)
stops sessions itself (``service_stopped``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from livekit import api as lkapi

from greenroom.livekit_server import LiveKitServer, free_port

from .support import API_KEY

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

HERE = Path(__file__).parent


class Service:
    def __init__(self, data_dir: Path, livekit: LiveKitServer, log: Path, database_url: str | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "GREENROOM_DATA_DIR": str(data_dir),
            "GREENROOM_LIVEKIT_URL": livekit.url,
            "GREENROOM_LIVEKIT_API_KEY": livekit.api_key,
            "GREENROOM_LIVEKIT_API_SECRET": livekit.api_secret,
            "GREENROOM_API_KEY": API_KEY,
        }
        if database_url:
            env["GREENROOM_DATABASE_URL"] = database_url
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serve_disc.py"), "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=HERE,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"service exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "service did not come up"
            time.sleep(0.2)
        self.client = httpx.Client(base_url=self.url, headers={"X-Api-Key": API_KEY}, timeout=60)

    def stop(self, sig: int) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(90)  # a graceful stop closes sessions (bounded at 10 s each part)
        self.log.close()


@pytest.fixture
def services(data_dir: Path, livekit: LiveKitServer, tmp_path: Path) -> Iterator[list[Service]]:
    running: list[Service] = []
    yield running
    for s in running:
        s.stop(signal.SIGKILL)


def rooms(livekit: LiveKitServer) -> set[str]:
    async def go() -> set[str]:
        async with lkapi.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
            return {r.name for r in (await lk.room.list_rooms(lkapi.ListRoomsRequest())).rooms}

    import asyncio

    return asyncio.run(go())


def wait_first_frame(client: httpx.Client, sid: str) -> None:
    deadline = time.monotonic() + 90  # generous: a loaded machine starts sessions slowly
    while client.get(f"/v2/streaming/sessions/{sid}/snapshot.png").status_code != 200:
        assert time.monotonic() < deadline, "no composited frame"
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def test_restart_mid_session_reports_the_truth(
    data_dir: Path,
    livekit: LiveKitServer,
    tmp_path: Path,
    services: list[Service],
    database_url: str | None,
) -> None:
    log = tmp_path / "service.log"
    a = Service(data_dir, livekit, log, database_url)
    services.append(a)
    tpl = a.client.post(
        "/v1/templates", json={"name": "r", "provider": "disc", "background": "#112233"}
    )
    assert tpl.status_code == 201, tpl.text
    first = a.client.post("/v2/streaming/sessions", json={"template_id": tpl.json()["id"]}).json()
    wait_first_frame(a.client, first["session_id"])
    assert (
        a.client.get(f"/v2/streaming/sessions/{first['session_id']}").json()["status"] == "started"
    )

    a.stop(signal.SIGKILL)  # a crash: nothing gets to clean up
    assert first["room"] in rooms(livekit)

    b = Service(data_dir, livekit, log, database_url)
    services.append(b)
    s = b.client.get(f"/v2/streaming/sessions/{first['session_id']}").json()
    assert (s["status"], s["stop_reason"]) == ("stopped", "service_restarted")
    assert s["stopped_at"] is not None
    assert first["room"] not in rooms(livekit)
    assert (
        b.client.get("/v2/streaming/sessions", params={"status": "started"}).json()["sessions"]
        == []
    )
    assert "greenroom_sessions_active 0.0" in b.client.get("/metrics").text
    r = b.client.post(f"/v2/streaming/sessions/{first['session_id']}/speak", json={"text": "hi"})
    assert r.status_code == 409

    # a graceful stop ends running sessions itself
    second = b.client.post("/v2/streaming/sessions", json={"template_id": tpl.json()["id"]}).json()
    wait_first_frame(b.client, second["session_id"])
    b.stop(signal.SIGTERM)
    assert second["room"] not in rooms(livekit)

    c = Service(data_dir, livekit, log, database_url)
    services.append(c)
    s = c.client.get(f"/v2/streaming/sessions/{second['session_id']}").json()
    assert (s["status"], s["stop_reason"]) == ("stopped", "service_stopped")
    assert API_KEY not in log.read_text()  # the key never reaches the log
