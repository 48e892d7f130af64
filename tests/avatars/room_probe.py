"""A subscriber in its own process: records what one avatar sends until stdin closes.

    python room_probe.py URL TOKEN AVATAR_IDENTITY [MOUTH_Y0 MOUTH_Y1 MOUTH_X0 MOUTH_X1]

Prints ``ready`` once both of the avatar's tracks are subscribed, then, when stdin closes,
one JSON object: ``video`` [[arrival, width, height, border_green, mouth_dark], ...],
``audio`` [[arrival, rms], ...] per 10 ms, ``states`` [[arrival, state], ...]. Arrival times
are ``time.monotonic()``, the same clock as the test process's. Running apart keeps the
subscriber's decoding and Python work from competing with the avatar under test for the
test process's GIL and event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from livekit import rtc

STATE = "greenroom.avatar.state"


def border_green(u: np.ndarray, v: np.ndarray) -> bool:
    """The frame's top row, sides and bottom corners are screen green (low U and V).

    #00B140 is U about 105, V about 60 (grey is 128/128). The presenter's shoulders are cut
    by the bottom edge, as in any head-and-shoulders shot, so the bottom middle is left out.
    """
    k = u.shape[1] // 6
    ring_u = np.concatenate([u[0], u[:, 0], u[:, -1], u[-1, :k], u[-1, -k:]])
    ring_v = np.concatenate([v[0], v[:, 0], v[:, -1], v[-1, :k], v[-1, -k:]])
    return bool((ring_v > 95).mean() < 0.05 and (ring_u > 122).mean() < 0.05)


async def main(url: str, token: str, identity: str, mouth: list[int] | None) -> None:
    video: list[list[object]] = []
    audio: list[list[float]] = []
    states: list[list[object]] = []
    subscribed: set[str] = set()
    room = rtc.Room()

    async def on_video(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.I420):
            f = ev.frame
            w, h = f.width, f.height
            buf = np.frombuffer(f.data, np.uint8)
            y = buf[: w * h].reshape(h, w)
            u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
            v = buf[w * h * 5 // 4 : w * h * 3 // 2].reshape(h // 2, w // 2)
            dark = 0.0
            if mouth:
                y0, y1, x0, x1 = mouth
                dark = float((y[y0:y1, x0:x1] < 70).mean())
            video.append([time.monotonic(), w, h, border_green(u, v), dark])

    async def on_audio(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1, frame_size_ms=10)
        async for ev in stream:
            x = np.frombuffer(ev.frame.data, np.int16).astype(np.float32)
            audio.append([time.monotonic(), float(np.sqrt(np.mean(x * x)))])

    tasks: list[asyncio.Future[None]] = []

    def on_track(track: rtc.Track, _pub: object, p: rtc.RemoteParticipant) -> None:
        if p.identity == identity:
            video_track = track.kind == rtc.TrackKind.KIND_VIDEO
            subscribed.add("video" if video_track else "audio")
            tasks.append(asyncio.ensure_future((on_video if video_track else on_audio)(track)))

    def on_attrs(changed: dict[str, str], p: rtc.Participant) -> None:
        if p.identity == identity and STATE in changed:
            states.append([time.monotonic(), changed[STATE]])

    room.on("track_subscribed", on_track)
    room.on("participant_attributes_changed", on_attrs)
    await room.connect(url, token)
    for p in room.remote_participants.values():
        if p.identity == identity and STATE in p.attributes:
            states.append([time.monotonic(), p.attributes[STATE]])
    deadline = time.monotonic() + 20
    while len(subscribed) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print("ready" if len(subscribed) == 2 else "no-tracks", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for t in tasks:
        t.cancel()
    await room.disconnect()
    print(json.dumps({"video": video, "audio": audio, "states": states}), flush=True)


if __name__ == "__main__":
    url, token, identity, *rest = sys.argv[1:]
    asyncio.run(main(url, token, identity, [int(v) for v in rest] or None))
