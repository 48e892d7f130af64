"""First composited frame after ``POST /v2/streaming/sessions``, built-in avatar (target <= 2 s).

Set-up (not timed): a LiveKit server on loopback, the Greenroom API served by uvicorn on
loopback in this process, one template (``local`` avatar, colour background).

Timed, ``--runs`` times: POST a session over HTTP; a viewer joins with the returned
subscribe-only token and waits for the first frame of the compositor's track that shows
the avatar (the centre of the picture differs from the background). Anchor, same run: the
first frame of the avatar's raw track at the same viewer, so the ratio shows what the
compositor adds. The server's own figure (``first_frame_ms``: POST received to first
composited avatar frame published) is printed too. The first session of a process is
"cold" (kernels load, espeak-ng starts); the others are "warm".

    .venv/bin/python bench/first_frame.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from livekit import rtc
from pydantic import SecretStr

from _frames import shows_avatar
from greenroom.api import create_app
from greenroom.config import Settings
from greenroom.livekit_server import LiveKitServer, free_port


class StartTimes(logging.Handler):
    """Keeps the service's own start breakdown (avatar / compositor joined) per session."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_session: dict[str, dict[str, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "started":
            self.by_session[record.session] = {  # type: ignore[attr-defined]
                "avatar_joined_s": round(record.avatar_ms / 1000, 3),  # type: ignore[attr-defined]
                "compositor_joined_s": round(record.compositor_ms / 1000, 3),  # type: ignore[attr-defined]
            }


KEY = "bench-key"


async def watch(url: str, token: str, compositor: str, avatar: str, t0: float) -> dict[str, float]:
    """Join as the viewer; seconds from ``t0`` to the first frames that matter."""
    room = rtc.Room()
    seen: dict[str, float] = {}
    done = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def read(track: rtc.Track, who: str) -> None:
        async for ev in rtc.VideoStream(track, capacity=1):
            if who == "raw_avatar":
                seen.setdefault("raw_avatar", time.perf_counter() - t0)
                return
            if shows_avatar(ev.frame):
                seen["composited"] = time.perf_counter() - t0
                done.set()
                return

    @room.on("track_subscribed")
    def _(track: rtc.Track, _pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if track.kind != rtc.TrackKind.KIND_VIDEO:
            return
        who = {compositor: "composited", avatar: "raw_avatar"}.get(p.identity)
        if who:
            tasks.append(asyncio.create_task(read(track, who)))

    await room.connect(url, token)
    try:
        await asyncio.wait_for(done.wait(), 60)
        for _ in range(50):  # give the raw track's first frame a moment, if it is still due
            if "raw_avatar" in seen:
                break
            await asyncio.sleep(0.1)
    finally:
        for t in tasks:
            t.cancel()
        await room.disconnect()
    return seen


async def main(runs: int, warm_wait: float) -> None:
    lk = LiveKitServer.start(port=free_port())
    data = Path(tempfile.mkdtemp(prefix="greenroom-bench-"))
    port = free_port()
    settings = Settings(
        _env_file=None,
        data_dir=data,
        api_key=SecretStr(KEY),
        api_port=port,
        livekit_url=lk.url,
        livekit_api_key=lk.api_key,
        livekit_api_secret=SecretStr(lk.api_secret),
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    if warm_wait:
        await asyncio.sleep(warm_wait)  # let the service's background warm-up finish
    times = StartTimes()
    sessions_log = logging.getLogger("greenroom.sessions")
    sessions_log.addHandler(times)
    sessions_log.setLevel(logging.INFO)
    results = []
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": KEY}, timeout=120
        ) as c:
            tpl = (
                await c.post(
                    "/v1/templates",
                    json={"name": "bench", "provider": "local", "background": "#0044ff"},
                )
            ).json()
            for i in range(runs):
                t0 = time.perf_counter()
                r = await c.post("/v2/streaming/sessions", json={"template_id": tpl["id"]})
                r.raise_for_status()
                s = r.json()
                t_post = time.perf_counter() - t0
                seen = await watch(
                    s["livekit_url"],
                    s["access_token"],
                    s["compositor_identity"],
                    s["avatar_identity"],
                    t0,
                )
                server_ms = (await c.get(f"/v2/streaming/sessions/{s['session_id']}")).json()[
                    "first_frame_ms"
                ]
                await c.delete(f"/v2/streaming/sessions/{s['session_id']}")
                row = {
                    "run": i,
                    "kind": "first" if i == 0 else "next",
                    "post_s": round(t_post, 3),
                    "viewer_first_composited_s": round(seen["composited"], 3),
                    "viewer_first_raw_avatar_s": round(seen.get("raw_avatar", float("nan")), 3),
                    "server_first_frame_s": round(server_ms / 1000, 3) if server_ms else None,
                    **times.by_session.get(s["session_id"], {}),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
                await asyncio.sleep(1.0)
    finally:
        server.should_exit = True
        await serving
        lk.stop()
        shutil.rmtree(data, ignore_errors=True)
    warm = [r["viewer_first_composited_s"] for r in results]
    raw = [
        r["viewer_first_raw_avatar_s"]
        for r in results
        if r["viewer_first_raw_avatar_s"] == r["viewer_first_raw_avatar_s"]
    ]
    if warm:
        med, anchor = statistics.median(warm), statistics.median(raw)
        print(
            f"all runs: first composited frame at the viewer, median {med:.2f} s, "
            f"max {max(warm):.2f} s (target <= 2 s); raw avatar track {anchor:.2f} s "
            f"(composited/raw = {med / anchor:.2f}x)"
        )
    print(f"first session of the process: {results[0]['viewer_first_composited_s']:.2f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--warm-wait", type=float, default=15.0, help="seconds to wait after start (0: none)"
    )
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.warm_wait))
