"""Browser fixtures: Debian's Chromium through Playwright, and an HTTP server in a thread.

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` via ``executable_path``.
Every page records console errors and uncaught exceptions; tests assert there are none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from browser_helpers import CHROMIUM_ARGS, BrowserPage, PageLog, ThreadServer, chromium_path
from playwright.async_api import Browser, async_playwright

from greenroom.web.router import BUNDLE


@pytest.fixture(scope="session", autouse=True)
def _bundle_built() -> None:
    if not (BUNDLE / "viewer.js").is_file():
        pytest.fail(
            "viewer bundle missing: run `make setup` (npm ci + node build.mjs in src/greenroom/web)"
        )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def viewer_page(browser: Browser) -> AsyncIterator[BrowserPage]:
    """A fresh page (phone-or-desktop sized per test via ``page.set_viewport_size``)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    log = PageLog()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_error)
    try:
        yield BrowserPage(page, log)
    finally:
        await context.close()


@pytest.fixture
def serve() -> Iterator[type[ThreadServer]]:
    yield ThreadServer
