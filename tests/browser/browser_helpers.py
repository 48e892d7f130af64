"""Helpers for the browser tests: polling, and reading pixels and state out of the page."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from playwright.async_api import ConsoleMessage, Page

from fixtures.chromium import CHROMIUM_ARGS, chromium_path  # noqa: F401  (re-exported)
from greenroom.livekit_server import free_port

T = TypeVar("T")

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

# Average RGB of regions of the <video> element's current frame, regions as fractions
# (x0, y0, x1, y1) of the frame. Drawn at the video's own resolution, not the screen's.
_SAMPLE_JS = """
([selector, regions]) => {
  const v = document.querySelector(selector);
  if (!v || v.readyState < 2 || !v.videoWidth) return null;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(v, 0, 0);
  return regions.map(([x0, y0, x1, y1]) => {
    const x = Math.floor(x0 * c.width), y = Math.floor(y0 * c.height);
    const w = Math.max(1, Math.floor((x1 - x0) * c.width)), h = Math.max(1, Math.floor((y1 - y0) * c.height));
    const d = ctx.getImageData(x, y, w, h).data;
    let r = 0, g = 0, b = 0;
    for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; }
    const n = d.length / 4;
    return [r / n, g / n, b / n];
  });
}
"""

CORNERS = [(0.01, 0.02, 0.12, 0.2), (0.88, 0.02, 0.99, 0.2)]
"""Top-left and top-right patches: background in every Greenroom frame."""


async def wait_for(
    predicate: Callable[[], Awaitable[T | None] | T | None], timeout: float, interval: float = 0.1
) -> T:
    """Poll until ``predicate`` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def sample(
    page: Page, regions: list[tuple[float, float, float, float]], selector: str = "#video"
) -> list[tuple[float, float, float]] | None:
    return await page.evaluate(_SAMPLE_JS, [selector, [list(r) for r in regions]])


async def state(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        "() => { const g = window.greenroom || {}; return {state: g.state, compositor: g.compositor,"
        " avatar: g.avatar, background: g.background, avatarState: g.avatarState,"
        " endedReason: g.endedReason, error: g.error, videoTrackSid: g.videoTrackSid,"
        " audio: g.audioLevel ? g.audioLevel() : 0}; }"
    )


def close_to(rgb: tuple[float, float, float], want: tuple[int, int, int], tol: float = 30) -> bool:
    """Each channel within ``tol`` (video coding moves flat colours by a few levels)."""
    return all(abs(a - b) <= tol for a, b in zip(rgb, want, strict=True))


def hex_rgb(color: str) -> tuple[int, int, int]:
    n = int(color.lstrip("#"), 16)
    return (n >> 16) & 255, (n >> 8) & 255, n & 255


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

    def unexpected(self) -> list[str]:
        """The errors, less what the LiveKit client logs as an error when the server ends the
        room under it (its data channels are aborted): seen when a session stops while the page
        watches, more often on a loaded machine."""
        return [e for e in self.errors if not any(n in e for n in ROOM_CLOSED_NOISE)]


ROOM_CLOSED_NOISE = ("User-Initiated Abort", "data channel '")


@dataclass
class BrowserPage:
    page: Page
    log: PageLog


class ThreadServer:
    """Uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app: FastAPI, port: int | None = None):
        self.port = port or free_port()
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
