"""Fault tests: a session running through the API (FastAPI app, real LiveKit server, the
built-in local avatar, SQLite unless said otherwise), then one fault at a time.

Each test asserts what the user sees, that nothing is left running or half-written, and
measures the recovery time. Figures are printed at the end of the run (terminal summary)
and with ``-s`` as they come; ``docs/reliability.md`` quotes them.

``GREENROOM_FAULT_SECONDS`` sets how long the time-bounded faults last (vendor outage, held
database lock); the default (3 s) keeps the suite short.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from livekit import api as lkapi
from PIL import Image

from api.support import AUTH, make_settings
from greenroom.api import create_app
from greenroom.avatars import get_provider
from greenroom.config import Settings
from greenroom.errors import NotFound
from greenroom.livekit_server import LiveKitServer

T = TypeVar("T")

FIGURES: list[str] = []
BLUE = (0, 68, 255)


def fault_seconds(default: float) -> float:
    """How long a time-bounded fault lasts in this run."""
    raw = os.environ.get("GREENROOM_FAULT_SECONDS", "").strip()
    return float(raw) if raw else default


def record(fault: str, what: str, seconds: float) -> None:
    """Keep one measured figure for the terminal summary (and print it now)."""
    load = os.getloadavg()[0]
    line = f"{fault}: {what} {seconds:.2f} s (load {load:.2f}, {os.cpu_count()} cores)"
    FIGURES.append(line)
    print(f"\nFIGURE {line}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("fault recovery figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


async def wait_until(
    check: Callable[[], Awaitable[T]], what: str, timeout: float = 60.0, every: float = 0.2
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``
    (a hang bound, never a speed assertion)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if (
            last is not None
            and last is not False
            and not (isinstance(last, set | list) and not last)
        ):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        await asyncio.sleep(every)


def local_available() -> bool:
    try:
        get_provider("local")
    except NotFound:
        return False
    return True


async def participants(lk: LiveKitServer, room: str) -> set[str]:
    """Identities in ``room`` according to the LiveKit server (empty if the room is gone)."""
    async with lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as api:
        try:
            res = await api.room.list_participants(lkapi.ListParticipantsRequest(room=room))
        except lkapi.TwirpError as exc:
            if exc.code == "not_found":
                return set()
            raise
    return {p.identity for p in res.participants}


async def rooms(lk: LiveKitServer) -> set[str]:
    async with lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as api:
        res = await api.room.list_rooms(lkapi.ListRoomsRequest())
    return {r.name for r in res.rooms}


async def viewer_frame(
    lk: LiveKitServer, token: str, room: str, sender: str, timeout: float = 60.0
) -> np.ndarray:
    """Join as the session's viewer (its own token), subscribe to ``sender``'s camera at full
    quality and return the first frame that arrives."""
    from livekit import rtc

    got: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
    tasks: list[asyncio.Task[None]] = []
    viewer = rtc.Room()

    async def drain(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24):
            f = ev.frame
            if not got.done():
                got.set_result(np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3))
            return

    @viewer.on("track_subscribed")
    def _on(track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if p.identity == sender and track.kind == rtc.TrackKind.KIND_VIDEO:
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
            tasks.append(asyncio.create_task(drain(track)))

    await viewer.connect(lk.url, token, rtc.RoomOptions(auto_subscribe=True))
    try:
        return await asyncio.wait_for(got, timeout)
    finally:
        for t in tasks:
            t.cancel()
        await viewer.disconnect()


def corner_close_to(img: np.ndarray, rgb: tuple[int, int, int], tol: float = 20.0) -> bool:
    h, w, _ = img.shape
    patch = img[: h // 10, : w // 10].reshape(-1, 3)
    return bool(np.abs(np.median(patch, axis=0) - np.array(rgb)).max() <= tol)


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@dataclass
class Service:
    """The API in this process with an HTTP client on it, and the sessions it started."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    livekit: LiveKitServer
    template_id: str = ""
    started: list[dict[str, Any]] = field(default_factory=list)

    async def template(self, **fields: Any) -> str:
        body = {"name": "fault", "provider": "local", "quality": "low", "background": "#0044ff"}
        body.update(fields)
        r = await self.client.post("/v1/templates", json=body)
        assert r.status_code == 201, r.text
        self.template_id = r.json()["id"]
        return self.template_id

    frame_timeout: float = 90.0  # hang bound for a new session's first avatar frames

    async def start(self, **fields: Any) -> dict[str, Any]:
        """Start a session and wait for its first composited frame."""
        if not self.template_id:
            await self.template()
        r = await self.client.post(
            "/v2/streaming/sessions", json={"template_id": self.template_id, **fields}
        )
        assert r.status_code == 200, r.text
        started = r.json()
        self.started.append(started)
        await self.first_frame(started["session_id"], self.frame_timeout)
        await self.avatar_frames(started["session_id"], self.frame_timeout)
        return started

    async def avatar_frames(self, sid: str, timeout: float = 90.0) -> int:
        """Wait until the compositor has published frames with the avatar in them."""

        async def some() -> int | None:
            return (await self.frames_out(sid)) or None

        return await wait_until(some, f"avatar frames composited in {sid}", timeout)

    async def session(self, sid: str) -> dict[str, Any]:
        r = await self.client.get(f"/v2/streaming/sessions/{sid}")
        assert r.status_code == 200, r.text
        return r.json()

    async def first_frame(self, sid: str, timeout: float = 90.0) -> np.ndarray:
        async def frame() -> np.ndarray | None:
            r = await self.client.get(f"/v2/streaming/sessions/{sid}/snapshot.png")
            if r.status_code == 200:
                return decode_png(r.content)
            assert r.status_code == 409, r.text
            return None

        return await wait_until(frame, f"a composited frame of {sid}", timeout)

    async def frames_out(self, sid: str) -> int:
        metrics = (await self.session(sid))["metrics"] or {}
        return int(metrics.get("frames_out") or 0)

    async def open_sessions(self) -> list[str]:
        out = []
        for status in ("starting", "started"):
            r = await self.client.get("/v2/streaming/sessions", params={"status": status})
            assert r.status_code == 200, r.text
            out += [s["session_id"] for s in r.json()["sessions"]]
        return out


@pytest.fixture(autouse=True)
def _local_avatar() -> None:
    if not local_available():
        pytest.skip("the built-in local avatar provider is not available in this tree")


async def open_service(
    data_dir: Path, livekit: LiveKitServer, **extra: Any
) -> AsyncIterator[Service]:
    settings = make_settings(data_dir, livekit, **extra)
    app = create_app(settings, warm_up=False)
    async with app.router.lifespan_context(app):
        # a server error comes back as the 500 a client would get, not as an exception
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://greenroom.test", headers=AUTH, timeout=120
        ) as client:
            yield Service(app=app, client=client, settings=settings, livekit=livekit)


@pytest.fixture
async def service(data_dir: Path, livekit: LiveKitServer) -> AsyncIterator[Service]:
    """The API on the session-wide LiveKit server, with SQLite in ``data_dir``."""
    async for s in open_service(data_dir, livekit):
        yield s
