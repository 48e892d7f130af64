"""The viewer and a session's lifetime, in Chromium: reloading reconnects, the page counts
down the last minute, says in words why the session ended and (as in the demo) offers to
start a new one, which it then shows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_helpers import BrowserPage, ThreadServer, sample, state, wait_for
from pydantic import SecretStr

from api import disc_provider
from greenroom.api.app import create_app
from greenroom.config import Settings
from greenroom.livekit_server import LiveKitServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

API_KEY = "test-api-key-lifetime"
IDLE = 25  # seconds: under a minute, so the page counts down from the start


@pytest.fixture(scope="module")
def service(
    livekit: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, httpx.Client, str]]:
    disc_provider.register()
    port = free_port()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        livekit_url=livekit.url,
        livekit_api_key=livekit.api_key,
        livekit_api_secret=SecretStr(livekit.api_secret),
        data_dir=Path(tmp_path_factory.mktemp("viewer-lifetime")),
        api_key=SecretStr(API_KEY),
        api_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        viewer_can_restart=True,
    )
    with (
        ThreadServer(create_app(settings, warm_up=False), port) as srv,
        httpx.Client(base_url=srv.url, headers={"X-Api-Key": API_KEY}, timeout=60) as client,
    ):
        r = client.post(
            "/v1/templates",
            json={
                "name": "short",
                "provider": "disc",
                "background": "#0044ff",
                "idle_timeout": IDLE,
            },
        )
        assert r.status_code == 201, r.text
        yield srv.url, client, r.json()["id"]


async def _showing(page: object) -> None:
    await wait_for(lambda: sample(page, [(0.4, 0.4, 0.6, 0.6)]), timeout=60)  # type: ignore[arg-type]


async def test_reload_countdown_ended_in_words_and_a_new_session(
    service: tuple[str, httpx.Client, str], viewer_page: BrowserPage
) -> None:
    _, client, template_id = service
    page = viewer_page.page
    started = client.post("/v2/streaming/sessions", json={"template_id": template_id})
    assert started.status_code == 200, started.text
    first = started.json()["session_id"]
    second = None
    try:
        await page.goto(started.json()["viewer_url"])
        await _showing(page)
        assert (await state(page))["state"] == "live"

        # reloading the page joins again and shows the picture again
        t0 = time.monotonic()
        await page.reload()
        await _showing(page)
        reload_s = time.monotonic() - t0
        assert (await state(page))["state"] == "live"
        print(f"reload to picture: {reload_s:.2f} s")

        # under a minute left: the page says how long, and why
        pill = page.locator("#time-left")
        await pill.wait_for(state="visible", timeout=15000)
        assert "ends in" in (await pill.text_content() or "")
        assert "idle" in (await pill.text_content() or "")
        left = await page.evaluate("() => window.greenroom.timeLeft")
        assert isinstance(left, int) and 0 <= left <= IDLE

        # nobody uses it: it ends, and the page says why in words and offers a new one
        await wait_for(
            lambda: page.evaluate("() => window.greenroom.state === 'ended'"), timeout=IDLE + 60
        )
        text = await page.locator("#overlay-text").text_content() or ""
        assert "nobody used the session for its idle timeout (idle_timeout)" in text
        assert await pill.is_hidden()
        restart = page.locator("#restart")
        await restart.wait_for(state="visible", timeout=10000)
        await restart.click()
        await page.wait_for_url(lambda u: "/viewer/" in u and first not in u, timeout=60000)
        second = page.url.split("/viewer/")[1].split("#")[0]
        await _showing(page)
        assert (await state(page))["state"] == "live"
        assert client.get(f"/v2/streaming/sessions/{second}").json()["status"] == "started"
    finally:
        for sid in (first, second):
            if sid:
                client.delete(f"/v2/streaming/sessions/{sid}")
    # the LiveKit client reports its data channels aborted when a page unloads (the reload)
    # or its room is deleted (the end): expected, not a fault of the page
    errors = viewer_page.log.unexpected()
    assert errors == [], viewer_page.log.lines
