"""The ``alpha_packed`` output drawn by ``greenroom-transparent.js`` over a page: the page
shows through where the avatar's matte is 0 and the avatar's colour where it is 1.

A still disc avatar on green (exact alpha known) goes through a compositor with
``output="alpha_packed"`` and LiveKit to Chromium, where ``<greenroom-avatar>`` draws it on
a canvas over an orange page; a screenshot of the page is what the user would see.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import BrowserPage, ThreadServer, wait_for
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from PIL import Image

from greenroom.compositor import Compositor, CompositorOptions
from greenroom.compositor.synthetic import SKIN, DiscScene, SyntheticAvatar
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import viewer_token

pytestmark = pytest.mark.browser

APP = Path(__file__).resolve().parents[1] / "js_agents"
PAGE = (255, 128, 0)  # transparent.html's background
SCENE = DiscScene(width=640, height=360, motion=False)


@pytest.fixture
def app_server() -> Iterator[ThreadServer]:
    if not (APP / "build" / "transparent.js").is_file():
        pytest.fail("transparent test page missing: run `make setup` (tests/js_agents)")
    app = FastAPI()
    app.mount("/", StaticFiles(directory=APP, html=True))
    with ThreadServer(app) as server:
        yield server


def _regions() -> tuple[np.ndarray, np.ndarray]:
    """Pixels surely outside the disc and surely inside it (a margin off the edge)."""
    alpha = SCENE.alpha(0.0)
    cy, cx = np.mgrid[0 : SCENE.height, 0 : SCENE.width]
    d = np.hypot(cx + 0.5 - SCENE.width / 2, cy + 0.5 - SCENE.height / 2)
    r = SCENE.radius * SCENE.height
    return (alpha == 0) & (d > r + 12), (alpha == 1) & (d < r - 12)


async def _screen(page: BrowserPage) -> np.ndarray:
    png = await page.page.screenshot(clip={"x": 0, "y": 0, "width": 640, "height": 360})
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)


async def test_transparent_avatar_over_the_page(
    livekit: LiveKitServer, room_name: str, viewer_page: BrowserPage, app_server: ThreadServer
) -> None:
    avatar = SyntheticAvatar(scene=SCENE, flash=False, audio=False)
    async with contextlib.AsyncExitStack() as stack:
        await avatar.start(livekit.url, livekit.api_key, livekit.api_secret, room_name, "presenter")
        stack.push_async_callback(avatar.aclose)
        comp = await Compositor.start(
            _Target(livekit, room_name),
            "presenter",
            "#0044ff",  # not used by alpha_packed: nothing of it may show
            CompositorOptions(simulcast=False, stats_interval=0, output="alpha_packed"),
        )
        stack.push_async_callback(comp.aclose)
        await comp.wait_first_frame(180)
        assert comp.room is not None
        assert comp.room.local_participant.attributes["greenroom.output"] == "alpha_packed"

        token = viewer_token(livekit.api_key, livekit.api_secret, room=room_name, identity="v")
        await viewer_page.page.goto(
            f"{app_server.url}/transparent.html#url={livekit.url}&token={token}"
        )
        outside, inside = _regions()

        async def drawn() -> list[np.ndarray] | None:
            shot = await _screen(viewer_page)
            fg = np.abs(shot[inside] - SKIN).mean()
            return [shot] if fg < 25 else None

        try:
            (shot,) = await wait_for(drawn, 120, interval=0.5)
        except TimeoutError:
            shot = await _screen(viewer_page)
            raise AssertionError(
                f"avatar not drawn: inside {shot[inside].mean(0)}, outside {shot[outside].mean(0)}"
            ) from None
        bg_err = np.abs(shot[outside] - PAGE).mean()
        fg_err = np.abs(shot[inside] - SKIN).mean()
        assert bg_err < 8, f"the page under the matte's 0 is off by {bg_err:.1f}"
        assert fg_err < 25, f"the avatar's colour is off by {fg_err:.1f}"
        # no trace of the green screen anywhere: the page, the avatar or a mix of both
        green = (shot[..., 1] > shot[..., 0] + 40) & (shot[..., 1] > shot[..., 2] + 40)
        assert green.sum() < 50, f"{green.sum()} green pixels"
        assert await viewer_page.page.evaluate("() => window.packedFrom") == comp.identity
        assert not viewer_page.log.unexpected(), viewer_page.log.lines


class _Target:
    def __init__(self, livekit: LiveKitServer, room: str) -> None:
        self.url, self.api_key, self.api_secret = livekit.url, livekit.api_key, livekit.api_secret
        self.room = room
