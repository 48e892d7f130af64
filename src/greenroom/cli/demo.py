"""``greenroom demo``: bring up a LiveKit server on loopback and show media flowing through it."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import typer
from livekit import rtc
from rich.console import Console

from greenroom.config import get_settings
from greenroom.errors import SetupError
from greenroom.livekit_server import LiveKitServer, ensure_binary

console = Console()
W, H, FPS = 1280, 720, 30


def _test_pattern(i: int) -> rtc.VideoFrame:
    """Colour bars with a moving white bar, RGBA."""
    bars = np.array(
        [
            [192, 192, 192],
            [192, 192, 0],
            [0, 192, 192],
            [0, 192, 0],
            [192, 0, 192],
            [192, 0, 0],
            [0, 0, 192],
        ],
        np.uint8,
    )
    x = np.arange(W) * len(bars) // W
    rgba = np.empty((H, W, 4), np.uint8)
    rgba[..., :3] = bars[x][None, :, :]
    rgba[..., 3] = 255
    col = (i * 8) % W
    rgba[:, col : col + 16, :3] = 255
    return rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, rgba.tobytes())


async def _run(seconds: float) -> None:
    settings = get_settings()
    binary = ensure_binary(settings.cache_dir)
    server = LiveKitServer.start(
        binary=binary,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
    )
    room_name = "greenroom-demo"
    publisher, viewer = rtc.Room(), rtc.Room()
    received = 0
    tasks: set[asyncio.Future[None]] = set()

    @viewer.on("track_subscribed")
    def _on_track(track: rtc.Track, *_: object) -> None:
        async def drain() -> None:
            nonlocal received
            async for _ev in rtc.VideoStream(track, capacity=2):
                received += 1

        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.add(asyncio.ensure_future(drain()))

    try:
        await publisher.connect(server.url, server.token("test-pattern", room_name))
        await viewer.connect(server.url, server.token("demo-viewer", room_name))
        source = rtc.VideoSource(W, H)
        await publisher.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("test-pattern", source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA),
        )
        console.print(f"LiveKit server: {server.url}  room: {room_name}")
        console.print(
            f"Join with a token for room '{room_name}' (key {server.api_key}); Ctrl-C stops."
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        while seconds <= 0 or loop.time() - start < seconds:
            source.capture_frame(_test_pattern(i))
            i += 1
            if i % (FPS * 2) == 0:
                console.print(f"published {i} frames, viewer received {received}")
            await asyncio.sleep(max(0.0, start + i / FPS - loop.time()))
    finally:
        with contextlib.suppress(Exception):
            await publisher.disconnect()
            await viewer.disconnect()
        server.stop()


def demo(
    seconds: float = typer.Option(0, help="Stop after this many seconds (0: run until Ctrl-C)."),
) -> None:
    """Start LiveKit on loopback and publish a test pattern that a viewer receives."""
    try:
        asyncio.run(_run(seconds))
    except SetupError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
