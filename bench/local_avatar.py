"""CPU of a whole ``LocalAvatar`` publishing 720p30 into a room, and its renderer's share.

Set-up (not timed): a LiveKit server on loopback; the avatar joins and runs 2 s.
Measured over ``--seconds``: this process's CPU time (render thread, VP8 encoder, audio
pump, SDK), frames published, deadlines skipped, and the renderer's median wall time per
frame from ``LocalAvatar.video_stats``.

    .venv/bin/python bench/local_avatar.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from greenroom.avatars import RoomTarget
from greenroom.avatars.local import LocalAvatar
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port


async def run(seconds: float) -> None:
    server = LiveKitServer.start(binary=ensure_binary(), port=free_port())
    try:
        target = RoomTarget(server.url, server.api_key, server.api_secret, "bench")
        avatar = await LocalAvatar.start(target, identity="bench-avatar")
        try:
            await avatar.say("Benchmarking the built-in avatar while it speaks. " * 20)
            await asyncio.sleep(2.0)
            stats = avatar.video_stats
            c0, f0, s0, w0 = os.times(), stats.frames, stats.skipped, time.monotonic()
            await asyncio.sleep(seconds)
            c1, f1, s1, w1 = os.times(), stats.frames, stats.skipped, time.monotonic()
        finally:
            await avatar.aclose()
    finally:
        server.stop()
    wall = w1 - w0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    render = statistics.median(stats.render_ms)
    print(f"LocalAvatar 1280x720 @ 30 fps, speaking, {wall:.1f} s")
    print(f"process CPU: {cpu / wall * 100:.0f} % of one core")
    print(f"frames published: {f1 - f0} ({(f1 - f0) / wall:.1f} fps), deadlines skipped: {s1 - s0}")
    print(f"render (wall, median): {render:.1f} ms/frame = {render * 3:.0f} % of one core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(run(ap.parse_args().seconds))


if __name__ == "__main__":
    main()
