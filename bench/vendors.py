"""Vendor providers against their emulators: how long a start takes, and what the relay costs.

Set-up (not timed): a LiveKit server on loopback, the LiveAvatar and HeyGen emulators served
by uvicorn in this process (backed by the built-in avatar), one viewer per run.

Timed, ``--runs`` times per provider: ``provider.start()`` (vendor HTTP calls, the avatar
joining, for HeyGen/FULL also the relay's first frame), then the compositor's first
composited frame that shows the avatar at the viewer. Anchor, same run: the built-in ``local``
provider, which joins the room directly with no vendor API in between.

After the timed start, each session runs ``--seconds`` more and the viewer counts the frames
of the avatar identity it can see (the raw avatar for LITE/local, the relay's republished
track for HeyGen/FULL), so the relay's frame rate can be compared with a direct avatar's;
"relay in fps" is what the relay received from the vendor room in the same window.

    .venv/bin/python bench/vendors.py --runs 3 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import numpy as np
from livekit import rtc

from greenroom.avatars import RoomTarget, get_provider
from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor import Compositor
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve
from greenroom.livekit_server import LiveKitServer, free_port
from greenroom.tokens import viewer_token

BLUE = (0, 68, 255)


def shows_avatar(img: np.ndarray) -> bool:
    h, w, _ = img.shape
    centre = img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(np.int16)
    return bool((np.abs(centre - np.array(BLUE)).max(axis=2) > 60).mean() > 0.2)


class Viewer:
    def __init__(self) -> None:
        self.room = rtc.Room()
        self.counts: dict[str, int] = {}
        self.first_avatar_frame: dict[str, float] = {}
        self.tasks: list[asyncio.Task] = []

    async def join(self, target: RoomTarget) -> None:
        @self.room.on("track_subscribed")
        def _on(track: rtc.Track, _pub, p: rtc.RemoteParticipant) -> None:
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self.tasks.append(asyncio.create_task(self.read(track, p.identity)))

        tok = viewer_token(target.api_key, target.api_secret, room=target.room, identity="v")
        await self.room.connect(target.url, tok)

    async def read(self, track: rtc.Track, who: str) -> None:
        async for ev in rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.RGB24):
            self.counts[who] = self.counts.get(who, 0) + 1
            if who.startswith("greenroom-") and who not in self.first_avatar_frame:
                f = ev.frame
                img = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
                if shows_avatar(img):
                    self.first_avatar_frame[who] = time.perf_counter()

    async def aclose(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.room.disconnect()


async def one_run(lk: LiveKitServer, name: str, kwargs: dict, seconds: float, n: int) -> dict:
    target = RoomTarget(lk.url, lk.api_key, lk.api_secret, f"bench-{name}-{n}")
    viewer = Viewer()
    await viewer.join(target)
    t0 = time.perf_counter()
    session = await get_provider(kwargs.pop("provider")).start(target, **kwargs)
    t_started = time.perf_counter()
    comp = await Compositor.start(target, session.identity, BackgroundSpec.parse("#0044ff"))
    try:
        while comp.identity not in viewer.first_avatar_frame:
            if time.perf_counter() - t0 > 60:
                raise TimeoutError(f"{name}: no composited avatar frame in 60 s")
            await asyncio.sleep(0.01)
        t_frame = viewer.first_avatar_frame[comp.identity]
        before = viewer.counts.get(session.identity, 0)
        relay = getattr(session, "relay", None)
        relayed = relay.frames if relay else 0
        await asyncio.sleep(seconds)
        fps = (viewer.counts.get(session.identity, 0) - before) / seconds
        relay_fps = (relay.frames - relayed) / seconds if relay else float("nan")
    finally:
        await session.aclose()
        await comp.aclose()
        await viewer.aclose()
    return {
        "start_s": t_started - t0,
        "first_frame_s": t_frame - t0,
        "avatar_fps": fps,
        "relay_in_fps": relay_fps,
    }


async def main(runs: int, seconds: float) -> None:
    lk = LiveKitServer.start(port=free_port())
    access = LiveKitAccess(lk.url, lk.api_key, lk.api_secret)
    la = liveavatar_emu.create_app(EmulatorConfig(livekit=access), LocalBackend())
    hg = heygen_emu.create_app(EmulatorConfig(livekit=access), LocalBackend())
    try:
        async with serve(la) as la_url, serve(hg) as hg_url, httpx.AsyncClient() as client:
            common = {"avatar_id": "anna", "voice": "en-us", "api_key": "dev", "client": client}
            cases = {
                "local (anchor)": {"provider": "local", "avatar_id": "anna"},
                "liveavatar LITE": {"provider": "liveavatar", "base_url": la_url, **common},
                "liveavatar FULL (relay)": {
                    "provider": "liveavatar",
                    "mode": "FULL",
                    "base_url": la_url,
                    **common,
                },
                "heygen (relay)": {"provider": "heygen", "base_url": hg_url, **common},
            }
            results: dict[str, list[dict]] = {k: [] for k in cases}
            for n in range(runs):
                for name, kw in cases.items():
                    results[name].append(await one_run(lk, name.split()[0], dict(kw), seconds, n))
    finally:
        lk.stop()
    anchor = statistics.median(r["first_frame_s"] for r in results["local (anchor)"])
    print(f"runs={runs} seconds={seconds}  (median over runs; first run of a process is cold)")
    print(
        f"{'provider':26} {'start() s':>10} {'first composited s':>19} {'vs anchor':>10} "
        f"{'avatar fps':>11}"
    )
    for name, rs in results.items():
        start = statistics.median(r["start_s"] for r in rs)
        first = statistics.median(r["first_frame_s"] for r in rs)
        fps = statistics.median(r["avatar_fps"] for r in rs)
        rin = statistics.median(r["relay_in_fps"] for r in rs)
        print(
            f"{name:26} {start:10.2f} {first:19.2f} {first / anchor:9.2f}x {fps:11.1f} {rin:13.1f}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    asyncio.run(main(a.runs, a.seconds))
