"""The service half of ``docs/quickstart-agents.md``, run as written: its shell blocks (two
templates with two backgrounds, a session from each by ``template_id``, a live switch, the
checks by API, snapshot and the compositor's attribute) against ``greenroom serve`` and
``greenroom emulate liveavatar`` processes on the test's LiveKit server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from greenroom.livekit_server import LiveKitServer, free_port

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "quickstart-agents.md"
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
ORANGE = (240, 128, 32)
API_KEY = "quickstart-test-key"
# between the doc's blocks: both sessions have a first composited frame (generous bound)
WAIT_FRAMES = """
for s in $SA $SB; do
  for i in $(seq 600); do curl -sf "$s/snapshot.png" -H "$AUTH" -o /dev/null && break; sleep 0.2; done
done
"""
# after the switch: the crossfade has played (the snapshot's corner is the office's orange)
WAIT_SWITCH = """
for i in $(seq 300); do
  curl -sf "$SB/snapshot.png" -H "$AUTH" -o late.png && python -c "
import sys; from PIL import Image
r, g, b = Image.open('late.png').convert('RGB').getpixel((12, 12))
sys.exit(0 if abs(r - 240) + abs(g - 128) + abs(b - 32) < 60 else 1)" && break
  sleep 0.2
done
"""


def service_blocks() -> list[str]:
    """The ``bash`` blocks of the service section, except the first (it starts servers)."""
    text = DOC.read_text().split("## The service path", 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert len(blocks) == 6, "the service section's blocks changed: update this test"
    return blocks[1:]


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path, health: str) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "greenroom"), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, f"{args[0]} exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(health, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{args[0]} did not come up"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def servers(livekit: LiveKitServer, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    emu_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GREENROOM_LIVEKIT_URL": livekit.url,
        "GREENROOM_LIVEKIT_API_KEY": livekit.api_key,
        "GREENROOM_LIVEKIT_API_SECRET": livekit.api_secret,
        "GREENROOM_DATA_DIR": str(tmp_path / "data"),
        "GREENROOM_API_KEY": API_KEY,
        "GREENROOM_LIVEAVATAR_BASE_URL": f"http://127.0.0.1:{emu_port}",
        "GREENROOM_LIVEAVATAR_API_KEY": "dev",
    }
    emulator = Process(
        ["emulate", "liveavatar", "--port", str(emu_port), "--api-key", "dev"],
        env,
        tmp_path / "emulator.log",
        f"http://127.0.0.1:{emu_port}/v1/sessions",
    )
    try:
        api = f"http://127.0.0.1:{api_port}"
        service = Process(["serve", "--port", str(api_port)], env, tmp_path / "serve.log",
                          f"{api}/healthz")  # fmt: skip
        try:
            yield api, env
        finally:
            service.stop()
    finally:
        emulator.stop()


@pytest.mark.timeout(900)  # two vendor sessions and two compositors on a loaded machine
def test_template_flow_as_documented(servers: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    api, env = servers
    work = tmp_path / "work"
    work.mkdir()
    Image.new("RGB", (1280, 720), ORANGE).save(work / "office.jpg", quality=95)
    templates, sessions, switch, snapshots, attribute = (
        b.replace("http://127.0.0.1:8080", api) for b in service_blocks()
    )
    cleanup = 'curl -s -X DELETE $SA -H "$AUTH" -o /dev/null; curl -s -X DELETE $SB -H "$AUTH" -o /dev/null'
    script = "\n".join(
        ["set -euo pipefail", templates, sessions, WAIT_FRAMES, 'echo "--- switch"', switch,
         WAIT_SWITCH, snapshots, 'echo "--- attribute"', attribute, 'echo "--- ids"; echo "$OFFICE"', cleanup]
    )  # fmt: skip
    proc = subprocess.run(
        ["bash", "-xc", script], cwd=work, env=env, capture_output=True, text=True, timeout=780
    )
    logs = "".join((tmp_path / n).read_text()[-2000:] for n in ("serve.log", "emulator.log"))
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}\n{logs}"

    before, rest = proc.stdout.split("--- switch\n")
    after, rest = rest.split("--- attribute\n")
    attribute_line, office = (s.strip() for s in rest.split("--- ids\n"))
    assert office.startswith("bg_")
    # each session started with its template's background
    assert [json.loads(line) for line in before.split()[-2:]] == [office, "#0b3d91"]
    # the switch: the API says so, the compositor's attribute says so, the snapshots show it
    assert json.loads(after.split()[-1]) == office
    identity, attr = attribute_line.split(" ", 1)
    assert identity.startswith("greenroom-")
    assert json.loads(attr)["kind"] == "image" and office in json.loads(attr)["name"]
    for png in ("brand.png", "desk.png"):
        rgb = np.asarray(Image.open(work / png).convert("RGB")).astype(int)
        h, w = rgb.shape[:2]
        patch = rgb[h // 50 : h // 5, w // 100 : w // 8].reshape(-1, 3).mean(axis=0)
        assert np.abs(patch - ORANGE).max() < 25, f"{png}: corner is {patch.round()}"
