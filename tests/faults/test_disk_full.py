"""The disk fills up during an upload: the data folder is a small tmpfs (database and library
both live there), nearly filled by another file, while a session runs."""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from api.support import library_files
from greenroom.livekit_server import LiveKitServer

from .conftest import Service, open_service, record

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

TMPFS_SIZE = 4 * 1024 * 1024


def noise_png(size: int = 512, seed: int = 1) -> bytes:
    """An incompressible image (random pixels): about size*size*3 bytes as a PNG."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture
def small_disk(data_dir: Path) -> Iterator[Path]:
    """``data_dir`` on its own 4 MiB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the data folder needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(data_dir)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield data_dir
    finally:
        if subprocess.run(["umount", str(data_dir)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(data_dir)], capture_output=True)


@pytest.fixture
async def disk_service(small_disk: Path, livekit: LiveKitServer) -> AsyncIterator[Service]:
    async for s in open_service(small_disk, livekit):
        yield s


async def backgrounds(svc: Service) -> list[str]:
    r = await svc.client.get("/v1/backgrounds")
    assert r.status_code == 200, r.text
    return sorted(b["id"] for b in r.json()["backgrounds"])


@pytest.mark.parametrize("runs_out", ["receiving", "storing"])
async def test_disk_full_during_upload(
    disk_service: Service, small_disk: Path, runs_out: str
) -> None:
    """``receiving``: less room than the file; ``storing``: room for the received file, not
    for its thumbnail and database row."""
    svc = disk_service
    a = await svc.start()
    small = await svc.client.post("/v1/backgrounds", files={"file": ("ok.png", noise_png(64))})
    assert small.status_code == 201, small.text
    before_ids, before_files = await backgrounds(svc), library_files(small_disk)

    big = noise_png(512)  # ~790 kB
    filler = small_disk / "filler.bin"
    with filler.open("wb") as f:  # leave less room than the upload needs
        room = len(big) // 2 if runs_out == "receiving" else len(big) + 8192
        f.write(b"\0" * max(0, free_bytes(small_disk) - room))
    r = await svc.client.post("/v1/backgrounds", files={"file": ("big.png", big)})
    print(f"\nupload, disk full while {runs_out} -> {r.status_code} {r.text[:300]}")

    # nothing half-written: no new file in the library (the inbox included), no new row
    assert library_files(small_disk) == before_files
    assert await backgrounds(svc) == before_ids
    # the running session does not care
    s = await svc.session(a["session_id"])
    assert s["status"] == "started", s

    # recovery: room again, and the same upload goes through
    filler.unlink()
    t0 = time.monotonic()
    again = await svc.client.post("/v1/backgrounds", files={"file": ("big.png", big)})
    record(
        f"disk full while {runs_out} an upload",
        "next upload stored after space freed",
        time.monotonic() - t0,
    )
    assert again.status_code == 201, again.text
    assert len(await backgrounds(svc)) == len(before_ids) + 1

    # what the uploader was told: the server is out of space (not "your file is malformed")
    assert r.status_code == 507, r.text
    err = r.json()["error"]
    assert err["code"] == "insufficient_storage", err
    assert "space" in err["message"], err
