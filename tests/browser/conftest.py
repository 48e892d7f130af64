"""Browser fixtures: Debian's Chromium through Playwright, and an HTTP server in a thread.

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` via ``executable_path``.
Every page records console errors and uncaught exceptions; tests assert there are none.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from greenroom.livekit_server import free_port
from greenroom.web.router import BUNDLE

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
]


def chromium_path() -> str:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is not installed (apt-get install chromium; `make setup` does it)")


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


@dataclass
class PageLog:
    """Console errors and page exceptions seen on one page."""

    errors: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        self.lines.append(f"{msg.type}: {msg.text}")
        if msg.type == "error":
            self.errors.append(msg.text)

    def on_error(self, exc: Exception) -> None:
        self.errors.append(f"uncaught: {exc}")


@dataclass
class BrowserPage:
    page: Page
    log: PageLog


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


class ThreadServer:
    """Uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app: FastAPI):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def serve() -> Iterator[type[ThreadServer]]:
    yield ThreadServer


DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
