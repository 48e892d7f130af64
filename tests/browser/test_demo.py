"""``greenroom demo`` as a user runs it: it comes up, refuses a twin, and Ctrl-C cleans up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from livekit import api as lkapi

from greenroom.config import Settings

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

GREENROOM = str(Path(sys.executable).with_name("greenroom"))


def _children(pid: int) -> set[int]:
    """All descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _room(url: str, name: str, env: dict[str, str]) -> lkapi.Room | None:
    settings = Settings(_env_file=None, **{"data_dir": env["GREENROOM_DATA_DIR"]})  # type: ignore[arg-type]
    secret = settings.livekit_api_secret.get_secret_value()
    async with lkapi.LiveKitAPI(url, settings.livekit_api_key, secret) as api:
        rooms = (await api.room.list_rooms(lkapi.ListRoomsRequest(names=[name]))).rooms
    return rooms[0] if rooms else None


def test_demo_runs_refuses_a_second_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GREENROOM_DATA_DIR": str(tmp_path / "data"),
        "GREENROOM_API_KEY": "",
        "COLUMNS": "300",
    }
    env.pop("GREENROOM_API_KEY")
    cmd = [GREENROOM, "demo", "--no-open", "--port", "0", "--livekit-port", "0"]
    demo = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    out: list[str] = []

    # a thread reads the output line by line: select() on a buffered pipe misses lines
    # already read into the buffer, and the wait then ran out with the line in hand
    def read() -> None:
        assert demo.stdout is not None
        for line in iter(demo.stdout.readline, ""):
            out.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        viewer = key = livekit_url = None
        while time.monotonic() < deadline and not (viewer and key and livekit_url):
            text = "".join(out)
            if m := re.search(r"Viewer:\s+(\S+)", text):
                viewer = m.group(1)
            if m := re.search(r"API key: ([\w-]+)\)", text):
                key = m.group(1)
            if m := re.search(r"LiveKit:\s+(ws://\S+)", text):
                livekit_url = m.group(1)
            if demo.poll() is not None and not reader.is_alive():
                break
            time.sleep(0.2)
        if not (viewer and key):
            log = tmp_path / "data" / "demo.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            pytest.fail(f"demo exited {demo.poll()}:\n{''.join(out)}\nlog tail:\n{tail}")

        page = httpx.get(viewer.split("#")[0], timeout=10)
        assert page.status_code == 200 and "viewer.js" in page.text
        base = viewer.split("/viewer/")[0]
        session_id = viewer.split("/viewer/")[1].split("#")[0]
        r = httpx.get(
            f"{base}/v2/streaming/sessions/{session_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert r.json()["status"] == "started"
        assert r.json()["template_name"] == "Greenroom demo"
        # the session owns its room: created with timeouts that outlast the session, so it
        # lives on with no viewer and after one leaves (LiveKit counts our parts as agents)
        assert r.json()["room_created"] is True
        assert livekit_url, "".join(out)
        room = asyncio.run(_room(livekit_url, r.json()["room"], env))
        assert room is not None and room.empty_timeout >= r.json()["idle_timeout"]
        assert room.departure_timeout >= r.json()["idle_timeout"]

        twin = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert twin.returncode == 1
        assert "already running" in twin.stdout
        assert f"pid {demo.pid}" in twin.stdout

        children = _children(demo.pid)
        assert children, "the demo should have started the LiveKit server"
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
        reader.join(10)
        assert demo.returncode == 0, "".join(out)
        assert "Demo stopped." in "".join(out)
        left = [p for p in children if _alive(p)]
        assert left == [], f"processes left behind: {left}"
        assert not (tmp_path / "data" / "demo.lock").exists()
    finally:
        if demo.poll() is None:  # the test failed midway: stop it the way a user would
            started = _children(demo.pid)
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(10)
            for pid in started:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
