"""A whole ``LocalAvatar`` publishing 720p30 into a room, seen by a subscriber.

Set-up (not timed): a LiveKit server on loopback; the avatar joins; a subscriber in another
process (so its decoding does not slow the avatar's event loop) receives its camera and
microphone and records arrival times on the shared monotonic clock; 4 s of warm-up.

Measured:
1. over ``--seconds`` while the avatar speaks: the avatar process's CPU time (render thread,
   VP8 encoder, audio pump, SDK), frames published and deadlines
   skipped, the renderer's median wall time, and the frame rate at the subscriber;
2. ``--rounds`` times: ``say()`` a sentence, then the arrival of the first loud audio frame
   and of the first frame with the mouth open (as a raw rtc subscriber receives them, with no
   playout synchronisation), then ``interrupt()`` mid-sentence and the arrival of the last
   loud audio frame.

    .venv/bin/python bench/local_avatar.py --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time

import numpy as np
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.avatars.local import LocalAvatar
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

LOUD = 1000.0  # int16 RMS per 10 ms: speech
SILENT = 30.0
TEXT = "Benchmarking the built-in avatar while it speaks, sentence after sentence. "


def _subscriber(
    url: str, token: str, mouth: tuple[int, int, int, int], seconds: float, out
) -> None:
    """Child process: record (arrival, RMS) per audio frame and (arrival, open mouth) per frame."""

    async def record() -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        audio: list[tuple[float, float]] = []
        video: list[tuple[float, float]] = []
        y0, y1, x0, x1 = mouth
        room = rtc.Room()

        async def on_audio(track: rtc.Track) -> None:
            stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1, frame_size_ms=10)
            async for ev in stream:
                x = np.frombuffer(ev.frame.data, np.int16).astype(np.float32)
                audio.append((time.monotonic(), float(np.sqrt(np.mean(x * x)))))

        async def on_video(track: rtc.Track) -> None:
            async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.I420):
                f = ev.frame
                y = np.frombuffer(f.data, np.uint8)[: f.width * f.height]
                y = y.reshape(f.height, f.width)
                video.append((time.monotonic(), float((y[y0:y1, x0:x1] < 70).mean())))

        tasks = []

        def on_track(track: rtc.Track, *_: object) -> None:
            run_ = on_video if track.kind == rtc.TrackKind.KIND_VIDEO else on_audio
            tasks.append(asyncio.ensure_future(run_(track)))

        room.on("track_subscribed", on_track)
        await room.connect(url, token)
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await room.disconnect()
        return audio, video

    out.send(asyncio.run(record()))


async def run(seconds: float, rounds: int) -> None:
    server = LiveKitServer.start(binary=ensure_binary(), port=free_port())
    avatar: LocalAvatar | None = None
    ctx = multiprocessing.get_context("spawn")  # the rtc runtime must not be forked
    recv, send = ctx.Pipe(duplex=False)
    try:
        target = RoomTarget(server.url, server.api_key, server.api_secret, "bench")
        avatar = await LocalAvatar.start(target, identity="bench-avatar")
        total = 4.0 + seconds + rounds * 3.5 + 2.0
        child = ctx.Process(
            target=_subscriber,
            args=(
                server.url,
                server.token("bench-viewer", "bench"),
                avatar.renderer.mouth_region(),
                total,
                send,
            ),
        )
        child.start()
        await asyncio.sleep(4.0)  # child start-up, subscription, warm-up

        # 1. steady state while speaking
        await avatar.say(TEXT * 40)
        await asyncio.sleep(1.0)
        stats = avatar.video_stats
        c0, f0, s0, w0 = os.times(), stats.frames, stats.skipped, time.monotonic()
        await asyncio.sleep(seconds)
        c1, f1, s1, w1 = os.times(), stats.frames, stats.skipped, time.monotonic()
        await avatar.interrupt()
        await asyncio.sleep(1.0)

        # 2. lip sync and interrupt
        marks = []
        for _ in range(rounds):
            t_say = time.monotonic()
            await avatar.say(TEXT * 3)
            await asyncio.sleep(2.0)
            t_int = time.monotonic()
            await avatar.interrupt()
            await asyncio.sleep(1.5)
            marks.append((t_say, t_int))
        audio, video = await asyncio.to_thread(recv.recv)
        await asyncio.to_thread(child.join, 30)
    finally:
        if avatar is not None:
            await avatar.aclose()
        server.stop()

    wall = w1 - w0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    got = sum(1 for t, _ in video if w0 <= t < w1)
    render = statistics.median(stats.render_ms)
    print(f"LocalAvatar 1280x720 @ 30 fps, speaking, {wall:.1f} s; subscriber in another process")
    print(f"avatar process CPU: {cpu / wall * 100:.0f} % of one core")
    print(
        f"published {f1 - f0} frames ({(f1 - f0) / wall:.1f} fps), {s1 - s0} deadlines "
        f"skipped; subscriber received {got / wall:.1f} fps"
    )
    print(f"render (wall, median): {render:.1f} ms/frame = {render * 3:.0f} % of one core")
    for t_say, t_int in marks:
        t_a = min(t for t, r in audio if t >= t_say and r >= LOUD)
        t_v = min(t for t, d in video if t >= t_say and d > 0.02)
        loud = [t for t, r in audio if t_int <= t < t_int + 1.5 and r >= SILENT]
        last = (max(loud) - t_int) * 1000 if loud else 0.0
        print(
            f"say(): first loud audio {1000 * (t_a - t_say):.0f} ms, first open mouth "
            f"{1000 * (t_v - t_say):.0f} ms (arrival, video - audio {1000 * (t_v - t_a):+.0f} ms); "
            f"interrupt(): last speech heard {last:.0f} ms later"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(run(args.seconds, args.rounds))


if __name__ == "__main__":
    main()
