"""HeyGen's official JavaScript SDK (``@heygen/streaming-avatar`` 2.1.0 from npm) against our
HeyGen emulator, in Debian's Chromium (``livekit-client`` needs WebRTC, which Node lacks).

The SDK runs unmodified with ``basePath`` set to the emulator: create token -> ``streaming.new``
-> ``streaming.start`` -> LiveKit join -> ``stream_ready`` -> a ``repeat`` task over REST and a
``talk`` message over its chat WebSocket -> talking events -> interrupt, keep-alive, stop.

One redirect is needed: the SDK opens its chat socket at ``wss://<basePath hostname>/...``,
dropping the port and forcing TLS, which a loopback emulator cannot serve. Playwright routes
that one socket to the emulator's ``ws://`` port, as a TLS proxy on 443 would in a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import WebSocketRoute, async_playwright

from fixtures.chromium import CHROMIUM_ARGS
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators.backend import LocalBackend

from ._browser import bundle, chromium
from .conftest import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sdk_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    return bundle(
        "heygen_sdk_entry.js", tmp_path_factory.mktemp("sdk"), "@heygen/streaming-avatar/lib"
    )


async def test_official_heygen_sdk_against_emulator(target, emu_config, sdk_bundle) -> None:
    app = heygen_emu.create_app(emu_config, LocalBackend())
    # the test page comes from the emulator's origin (a wrapper app, not the emulator's surface)
    site = FastAPI()
    site.get("/sdk-test.html", response_class=HTMLResponse)(lambda: "<body></body>")
    site.mount("/", app)
    async with serve(site) as base, httpx.AsyncClient() as client:
        r = await client.post(f"{base}/v1/streaming.create_token", headers={"X-Api-Key": "dev"})
        sdk_token = r.json()["data"]["token"]
        port = base.rsplit(":", 1)[1]
        proxies: list[asyncio.Task] = []

        async def chat_socket(route: WebSocketRoute) -> None:
            upstream = await websockets.connect(
                route.url.replace("wss://127.0.0.1/", f"ws://127.0.0.1:{port}/", 1)
            )
            route.on_message(lambda m: proxies.append(asyncio.ensure_future(upstream.send(m))))
            route.on_close(lambda *_: proxies.append(asyncio.ensure_future(upstream.close())))

            async def down() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for m in upstream:
                        route.send(m)

            proxies.append(asyncio.ensure_future(down()))

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.route_web_socket(
                    re.compile(r"^wss://127\.0\.0\.1/v1/ws/streaming\.chat"), chat_socket
                )
                await page.goto(f"{base}/sdk-test.html")
                await page.add_script_tag(content=sdk_bundle)
                out = await page.evaluate(
                    "(a) => window.runHeygenSdk(a)",
                    {
                        "basePath": base,
                        "token": sdk_token,
                        "avatarName": "Anna_public",
                        "text": "Hello from the official SDK.",
                    },
                )
            finally:
                await browser.close()
                for t in proxies:
                    t.cancel()
        assert not errors, errors

    assert out["videoTracks"] == 1 and out["audioTracks"] == 1
    assert out["videoSize"][0] * 9 == out["videoSize"][1] * 16
    r, g, b = out["cornerPixel"]
    assert g > 120 and r < 80 and b < 110, out["cornerPixel"]  # the avatar's green screen
    assert out["task"]["task_id"] and out["task"]["duration_ms"] > 500
    names = [e["name"] for e in out["events"]]
    assert "stream_ready" in names
    assert names.count("avatar_start_talking") >= 2  # REST repeat + WebSocket talk
    assert "avatar_stop_talking" in names
    (emulated,) = app.state.book.sessions.values()
    assert emulated.id == out["sessionId"] and emulated.status == "closed"
