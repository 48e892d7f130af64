"""The viewer page against a real LiveKit room whose participants the test publishes itself.

A stand-in compositor (attributes ``greenroom.role=compositor``, track ``greenroom``, RPC
``greenroom.set_background``) and a raw "avatar" on bright green join the room with the
rtc SDK. The page must pick the compositor's picture, never the raw avatar's, and switch
the background through the RPC. This isolates the page from the real compositor; the
end-to-end test (test_viewer_e2e.py) runs the whole service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from browser_helpers import (
    CHROMIUM_ARGS,
    CORNERS,
    chromium_path,
    close_to,
    hex_rgb,
    sample,
    state,
    wait_for,
)
from fastapi import FastAPI
from livekit import rtc
from playwright.async_api import async_playwright

from greenroom.errors import NotFound
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import agent_token, viewer_token
from greenroom.web.backend import ViewerBackground, ViewerSession
from greenroom.web.router import router

pytestmark = pytest.mark.browser

W, H, FPS = 640, 360, 15
AVATAR = "avatar-test"
COMPOSITOR = f"greenroom-{AVATAR}"
CENTRE = [(0.42, 0.4, 0.58, 0.6)]


@dataclass
class RoomBackend:
    """The viewer backend for a room the test controls (implements ViewerBackend)."""

    room: str
    status: str = "started"
    reason: str | None = None
    spoken: list[tuple[str, str]] = field(default_factory=list)

    async def session(self, session_id: str) -> ViewerSession:
        if session_id != "ses_test":
            raise NotFound(f"session {session_id!r} not found")
        return ViewerSession(
            session_id, self.status, self.room, self.reason, COMPOSITOR, AVATAR, None
        )

    async def backgrounds(self) -> list[ViewerBackground]:
        return []

    async def upload_background(self, *_: object) -> ViewerBackground:
        raise NotImplementedError

    async def speak(self, session_id: str, text: str, mode: str) -> None:
        self.spoken.append((text, mode))

    async def interrupt(self, session_id: str) -> None:
        pass


class Publisher:
    """A participant publishing a flat picture with a red square in the middle."""

    def __init__(self, identity: str, track: str, color: str, attributes: dict[str, str]):
        self.identity, self.track_name, self.color = identity, track, color
        self.attributes = attributes
        self.room = rtc.Room()
        self.task: asyncio.Task[None] | None = None

    async def start(self, lk: LiveKitServer, room: str) -> None:
        token = agent_token(
            lk.api_key, lk.api_secret, room=room, identity=self.identity,
            attributes=self.attributes,
        )  # fmt: skip
        await self.room.connect(lk.url, token)
        self.source = rtc.VideoSource(W, H)
        track = rtc.LocalVideoTrack.create_video_track(self.track_name, self.source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            rgba = np.empty((H, W, 4), np.uint8)
            rgba[..., :3] = hex_rgb(self.color)
            rgba[..., 3] = 255
            rgba[H // 3 : 2 * H // 3, W // 3 : 2 * W // 3, :3] = (220, 30, 30)
            self.source.capture_frame(rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, rgba.data))
            await asyncio.sleep(1 / FPS)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.room.disconnect()


@pytest.fixture
async def room_with_compositor(
    livekit: LiveKitServer, room_name: str
) -> AsyncIterator[tuple[Publisher, Publisher]]:
    raw = Publisher(AVATAR, "camera", "#00b140", {"greenroom.avatar.state": "idle"})
    comp = Publisher(
        COMPOSITOR,
        "greenroom",
        "#0044ff",
        {
            "greenroom.role": "compositor",
            "greenroom.avatar": AVATAR,
            "greenroom.background": json.dumps({"kind": "color", "color": "#0044ff"}),
            "greenroom.key_color": "#00b140",
        },
    )
    await raw.start(livekit, room_name)
    await comp.start(livekit, room_name)

    async def set_background(data: rtc.RpcInvocationData) -> str:
        spec = json.loads(data.payload)["background"]
        if not (isinstance(spec, str) and spec.startswith("#")):
            raise rtc.RpcError(2422, "this stand-in only takes colours")
        comp.color = spec
        attr = json.dumps({"kind": "color", "color": spec})
        await comp.room.local_participant.set_attributes({"greenroom.background": attr})
        return "ok"

    comp.room.local_participant.register_rpc_method("greenroom.set_background", set_background)
    try:
        yield raw, comp
    finally:
        await comp.stop()
        await raw.stop()


async def test_page_shows_the_compositor_not_the_raw_avatar_and_switches_by_rpc(
    livekit: LiveKitServer, room_name: str, room_with_compositor, viewer_page, serve
) -> None:
    app = FastAPI()
    app.include_router(router)
    backend = RoomBackend(room_name)
    app.state.viewer_backend = backend
    token = viewer_token(livekit.api_key, livekit.api_secret, room=room_name, identity="viewer-1")
    page = viewer_page.page
    with serve(app) as srv:
        await page.goto(f"{srv.url}/viewer/ses_test#token={token}&url={livekit.url}")
        await wait_for(lambda: sample(page, CENTRE + CORNERS), timeout=60)
        st = await state(page)
        assert st["state"] == "live"
        assert st["compositor"] == COMPOSITOR

        centre, left, right = await sample(page, CENTRE + CORNERS)
        assert close_to(centre, (220, 30, 30)), centre
        assert close_to(left, (0, 68, 255)) and close_to(right, (0, 68, 255)), (left, right)
        # The raw avatar (green) stays unsubscribed.
        subscribed = await page.evaluate(
            "() => [...document.querySelectorAll('video')].filter(v => v.srcObject).length"
        )
        assert subscribed == 1

        # The picker marks the background the compositor reports.
        assert "#0044ff" in await page.inner_text("#bg-current")
        assert await page.get_attribute('[data-spec="#6b1d3d"]', "aria-selected") == "false"
        await page.click('[data-spec="#6b1d3d"]')

        async def switched() -> bool:
            corners = await sample(page, CORNERS)
            return bool(corners) and all(close_to(c, (0x6B, 0x1D, 0x3D)) for c in corners)

        await wait_for(switched, timeout=60)
        selected = page.locator('[data-spec="#6b1d3d"][aria-selected="true"]')
        await selected.wait_for(timeout=60000)
        assert "#6b1d3d" in await page.inner_text("#bg-current")

        # Speak goes to the backend with the viewer token; bad input is refused by name.
        await page.fill("#say-text", "Hello there")
        await page.click("#say-go")
        await wait_for(lambda: backend.spoken, timeout=60)
        assert backend.spoken == [("Hello there", "repeat")]

    assert viewer_page.log.unexpected() == [], viewer_page.log.lines


class Tone:
    """A 440 Hz tone published as the stand-in compositor's audio."""

    def __init__(self, room: rtc.Room):
        self.room = room
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        source = rtc.AudioSource(48_000, 1, queue_size_ms=100)
        track = rtc.LocalAudioTrack.create_audio_track("greenroom-audio", source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )

        async def pump() -> None:
            n = 0
            while True:
                t = (np.arange(480) + n) / 48_000
                frame = rtc.AudioFrame.create(48_000, 1, 480)
                np.frombuffer(frame.data, np.int16)[:] = (
                    8000 * np.sin(2 * np.pi * 440 * t)
                ).astype(np.int16)
                await source.capture_frame(frame)
                n += 480

        self.task = asyncio.create_task(pump())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def test_click_to_unmute_when_the_browser_blocks_autoplay(
    livekit: LiveKitServer, room_name: str, room_with_compositor, serve
) -> None:
    _, comp = room_with_compositor
    tone = Tone(comp.room)
    await tone.start()
    app = FastAPI()
    app.include_router(router)
    app.state.viewer_backend = RoomBackend(room_name)
    token = viewer_token(livekit.api_key, livekit.api_secret, room=room_name, identity="viewer-2")
    args = [a for a in CHROMIUM_ARGS if not a.startswith("--autoplay-policy")]
    args.append("--autoplay-policy=user-gesture-required")
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path(), args=args)
            page = await browser.new_page()
            blocked = asyncio.Event()
            page.on(
                "console",
                lambda m: blocked.set() if "could not playback audio" in m.text else None,
            )
            with serve(app) as srv:
                await page.goto(f"{srv.url}/viewer/ses_test#token={token}&url={livekit.url}")
                # Wait passively: Playwright's evaluate() counts as a user gesture, which would
                # let the page play sound before the refusal this test is about.
                await asyncio.wait_for(blocked.wait(), 20)
                await page.locator("#unmute:not([hidden])").wait_for(timeout=60000)
                assert (await state(page))["audio"] == 0  # nothing heard before the click
                await page.click("#unmute")
                await page.locator("#unmute[hidden]").wait_for(state="attached", timeout=60000)
                # the level meter starts low for the first readings after the click on a
                # loaded machine (0.022 once on a fresh-clone run): wait for the tone itself
                level = await wait_for(
                    lambda: page.evaluate(
                        "() => (window.greenroom.audioLevel() > 0.05) ? "
                        "window.greenroom.audioLevel() : null"
                    ),
                    timeout=60,
                )
                assert level > 0.05
            await browser.close()
    finally:
        await tone.stop()
