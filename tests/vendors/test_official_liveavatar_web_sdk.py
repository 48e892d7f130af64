"""LiveAvatar's official web SDK (``@heygen/liveavatar-web-sdk`` 0.0.18 from npm), FULL mode,
against our LiveAvatar emulator in Debian's Chromium, unmodified, with ``apiUrl`` set to it.

Our backend mints the session token (``POST /v1/sessions/token``); the SDK starts the session
with only that Bearer token, joins the LiveKit room, waits for the avatar (``heygen``) and the
LiveAvatar agent participants, plays the stream, sends ``avatar.speak_text`` on
``agent-control``, gets ``avatar.speak_started``/``speak_ended``/``transcription`` on
``agent-response``, keeps alive and stops.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import async_playwright

from fixtures.chromium import CHROMIUM_ARGS
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend

from ._browser import bundle, chromium
from .conftest import serve

pytestmark = pytest.mark.browser


async def test_official_liveavatar_web_sdk_full_mode(
    emu_config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    script = bundle(
        "liveavatar_sdk_entry.js", tmp_path_factory.mktemp("sdk"), "@heygen/liveavatar-web-sdk"
    )
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    site = FastAPI()  # the test page at the emulator's origin (not part of its surface)
    site.get("/sdk-test.html", response_class=HTMLResponse)(lambda: "<body></body>")
    site.mount("/", app)
    async with serve(site) as base, httpx.AsyncClient() as client:
        r = await client.post(
            f"{base}/v1/sessions/token",
            headers={"X-API-KEY": "dev"},
            json={"mode": "FULL", "avatar_id": "anna", "avatar_persona": {"language": "en"}},
        )
        token = r.json()["data"]["session_token"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(f"{base}/sdk-test.html")
                await page.add_script_tag(content=script)
                out = await page.evaluate(
                    "(a) => window.runLiveAvatarSdk(a)",
                    {"apiUrl": base, "sessionToken": token, "text": "Hello from the web SDK."},
                )
            finally:
                await browser.close()
        (session,) = app.state.book.sessions.values()
        for _ in range(100):  # the SDK's stop call is not awaited by stop()
            if session.status == "closed":
                break
            await asyncio.sleep(0.1)
    assert not errors, errors
    assert out["sessionId"] == session.id and session.status == "closed"
    assert out["events"][0] == "stream_ready"
    assert "avatar.speak_started" in out["events"] and "avatar.speak_ended" in out["events"]
    assert "avatar.transcription:Hello from the web SDK." in out["events"]
    assert out["videoSize"][0] * 9 == out["videoSize"][1] * 16
    r, g, b = out["cornerPixel"]
    assert g > 120 and r < 80 and b < 110, out["cornerPixel"]  # the avatar's green screen
