"""Sessions per core with compositors dispatched to a worker versus in the API process, and
what dispatch adds to the first frame.

Set-up (not timed): a LiveKit server on loopback; per mode, ``greenroom serve`` in a child
process (its own data directory, ``GREENROOM_COMPOSITOR=inprocess`` or ``dispatch``) until its
keyer/avatar warm-up is done, and for ``dispatch`` one ``greenroom worker`` child process
(``--cpu-full 0``) until LiveKit has registered it and its idle job process is initialized.
One untimed session per mode goes first (the first session of a process loads what later
ones find loaded). Each session: a template with the built-in ``local`` avatar and a colour
background, and a subscribe-only viewer in this process that joins the session's room with
the token the API returns and subscribes to the compositor's tracks at full quality.

Timed, per mode and per N in ``--sizes``: N sessions started over HTTP; once every viewer
sees the composited avatar (and, for dispatch, the worker's next idle job process is ready),
``--seconds`` of steady state: CPU seconds (utime + stime, psutil) of the process tree that
holds the sessions, i.e. the API process and its children in-process, the worker and all its
job processes with dispatch. Running the API (and the worker) in child processes keeps the
viewers' decoding, which runs in this process, out of those figures. From it:
``% core/session`` (CPU seconds per second per session), ``sessions/core`` (its inverse), the
composited frames per second each viewer received, how many sessions held >= 25 fps, and
``ms/frame`` (the tree's CPU per composited frame delivered, which stays comparable when a
starved session delivers fewer frames). With dispatch one worker holds all N sessions, one
job process each (``procs`` counts the tree: worker, its helpers, jobs, one idle job). The
API's own CPU with dispatch (control plane) and the LiveKit server's are shown beside them,
with the machine's load average. Sessions are stopped (DELETE) and the holder left to go idle
between sizes.

Timed, ``--runs`` times per mode: ``POST /v2/streaming/sessions`` to the first composited
frame showing the avatar at the viewer (each run starts on an idle worker / API).

Anchor, same run: the in-process mode. Printed ratios are dispatch / in-process for CPU per
session (worker tree alone, and worker + API) and for the first frame (median).

    .venv/bin/python bench/scale.py --sizes 1 2 --seconds 10 --runs 3 [--json scale.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from livekit import rtc

from _frames import BACKGROUND, shows_avatar
from greenroom.compositor.options import TRACK_NAME
from greenroom.livekit_server import LiveKitServer, dies_with_parent, free_port

KEY = "bench-key"
MODES = ("inprocess", "dispatch")
HOLD_FPS = 25.0
READY_TIMEOUT = 240.0  # s for an API's warm-up or a worker's registration on a loaded machine
AVATAR_TIMEOUT = 120.0  # s for a session's composited avatar to reach its viewer
IDLE_CPU = 0.1  # cores: below this for two 1 s samples in a row, a process tree is idle
IDLE_TIMEOUT = 90.0
GREENROOM = [sys.executable, "-c", "from greenroom.cli import main; main()"]


# ---------------------------------------------------------------- child processes


class Child:
    """A ``greenroom`` command in its own process group, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                dies_with_parent([*GREENROOM, *argv], "TERM"),
                env={**os.environ, **env},
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ps = psutil.Process(self.proc.pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, needle: str, count: int = 1, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.log.name}: no {needle!r}:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.2)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` s, then any descendant left over."""
        if self.proc.poll() is not None:
            return
        family: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            family = self.ps.children(recursive=True)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for p in family:
            with contextlib.suppress(psutil.Error):
                p.kill()


def tree_cpu(root: psutil.Process) -> dict[int, tuple[float, float]]:
    """CPU seconds (user + system) of ``root`` and every descendant: pid -> (start, seconds)."""
    out: dict[int, tuple[float, float]] = {}
    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs += root.children(recursive=True)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = (p.create_time(), t.user + t.system)
    return out


def cpu_between(a: dict[int, tuple[float, float]], b: dict[int, tuple[float, float]]) -> float:
    """CPU seconds a tree used between two readings (a process born in between counts whole;
    one that ended in between is lost, so callers keep process starts out of the window)."""
    used = 0.0
    for pid, (start, secs) in b.items():
        before = a.get(pid)
        used += secs - before[1] if before and before[0] == start else secs
    return used


async def wait_idle(root: psutil.Process) -> None:
    """Until the tree uses under ``IDLE_CPU`` cores over two 1 s samples in a row."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        a = tree_cpu(root)
        await asyncio.sleep(1.0)
        quiet = quiet + 1 if cpu_between(a, tree_cpu(root)) < IDLE_CPU else 0
    if quiet < 2:
        print(f"  (pid {root.pid} still busy after {IDLE_TIMEOUT:.0f} s; going on)", flush=True)


# ---------------------------------------------------------------- viewers


class Viewer:
    """A subscribe-only viewer of one session: the compositor's tracks, video at full quality;
    counts the composited frames it receives and notes the first that shows the avatar."""

    def __init__(self, compositor: str) -> None:
        self.compositor = compositor
        self.room = rtc.Room()
        self.frames = 0
        self.first_avatar: float | None = None  # perf_counter
        self.avatar = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[rtc.VideoStream] = []

    async def join(self, url: str, token: str) -> None:
        self.room.on("track_published", self._published)
        self.room.on("track_subscribed", self._subscribed)
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
        for p in self.room.remote_participants.values():
            for pub in p.track_publications.values():
                self._published(pub, p)

    def _published(self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if p.identity != self.compositor:
            return
        if pub.kind == rtc.TrackKind.KIND_AUDIO or pub.name == TRACK_NAME:
            pub.set_subscribed(True)
            self._full_quality(pub)

    @staticmethod
    def _full_quality(pub: rtc.RemoteTrackPublication) -> None:
        if pub.kind == rtc.TrackKind.KIND_VIDEO and pub.simulcasted:
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)

    def _subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if p.identity == self.compositor and track.kind == rtc.TrackKind.KIND_VIDEO:
            self._full_quality(pub)
            self._tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track)
        self._streams.append(stream)
        async for ev in stream:
            self.frames += 1
            if self.first_avatar is None and shows_avatar(ev.frame):
                self.first_avatar = time.perf_counter()
                self.avatar.set()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for stream in self._streams:
            await stream.aclose()
        await self.room.disconnect()


@dataclass
class Session:
    id: str
    viewer: Viewer
    t_post: float  # perf_counter just before the POST
    post_s: float


# ---------------------------------------------------------------- one mode's stack


@dataclass
class Stack:
    """LiveKit (shared), this mode's API and, with dispatch, its worker."""

    mode: str
    lk: LiveKitServer
    api: Child
    worker: Child | None
    client: httpx.AsyncClient
    template: str
    jobs: int = 0  # sessions dispatched so far (each takes one job process)
    open: list[Session] = field(default_factory=list)

    @property
    def holder(self) -> psutil.Process:
        return self.worker.ps if self.worker else self.api.ps

    async def start_session(self) -> Session:
        t0 = time.perf_counter()
        r = await self.client.post("/v2/streaming/sessions", json={"template_id": self.template})
        if r.status_code != 200:
            raise RuntimeError(f"session start failed: {r.status_code} {r.text}")
        post_s = time.perf_counter() - t0
        s = r.json()
        self.jobs += 1
        viewer = Viewer(s["compositor_identity"])
        session = Session(s["session_id"], viewer, t0, post_s)
        self.open.append(session)
        await viewer.join(s["livekit_url"], s["access_token"])
        return session

    async def stop_all(self) -> None:
        sessions, self.open = self.open, []
        for s in sessions:
            with contextlib.suppress(httpx.HTTPError):
                await self.client.delete(f"/v2/streaming/sessions/{s.id}")
            await s.viewer.close()

    async def settle(self) -> None:
        """Let the holder go idle; with dispatch, wait for the job process that will take the
        next session (LiveKit Agents keeps one initialized ahead)."""
        if self.worker is not None:
            await self.worker.wait_for("process initialized", self.jobs + 1)
        await wait_idle(self.holder)
        await wait_idle(self.api.ps)


@contextlib.asynccontextmanager
async def stack(
    mode: str, lk: LiveKitServer, work: Path, max_sessions: int
) -> AsyncIterator[Stack]:
    data = work / mode
    data.mkdir()
    port = free_port()
    env = {
        "GREENROOM_LIVEKIT_URL": lk.url,
        "GREENROOM_LIVEKIT_API_KEY": lk.api_key,
        "GREENROOM_LIVEKIT_API_SECRET": lk.api_secret,
        "GREENROOM_DATA_DIR": str(data),
    }
    api_env = {
        **env,
        "GREENROOM_COMPOSITOR": mode,
        "GREENROOM_API_KEY": KEY,
        "GREENROOM_MAX_SESSIONS": str(max_sessions),
        "GREENROOM_MAX_SESSIONS_PER_KEY": str(max_sessions),
    }
    children: list[Child] = []
    try:
        worker = None
        if mode == "dispatch":
            worker = Child(
                f"worker --max-sessions {max_sessions} --cpu-full 0 --drain-timeout 5".split(),
                env,
                data / "worker.log",
                data,
            )
            children.append(worker)
        api = Child(["serve", "--port", str(port)], api_env, data / "api.log", data)
        children.append(api)
        await api.wait_for("warm-up done")
        if worker is not None:
            await worker.wait_for("registered worker")
            await worker.wait_for("process initialized")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": KEY}, timeout=180
        ) as client:
            r = await client.post(
                "/v1/templates",
                json={
                    "name": "bench",
                    "provider": "local",
                    "background": "#{:02x}{:02x}{:02x}".format(*BACKGROUND),
                },
            )
            r.raise_for_status()
            st = Stack(mode, lk, api, worker, client, r.json()["id"])
            try:
                yield st
            finally:
                await st.stop_all()
    finally:
        for child in reversed(children):  # the API first: it stops its sessions
            child.stop()


# ---------------------------------------------------------------- measurements


async def wait_avatars(sessions: list[Session]) -> None:
    """Until every viewer has seen the composited avatar (or ``AVATAR_TIMEOUT`` passed)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(AVATAR_TIMEOUT):
            await asyncio.gather(*(s.viewer.avatar.wait() for s in sessions))


async def first_frames(st: Stack, runs: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(runs):
        await st.settle()
        s = await st.start_session()
        await wait_avatars([s])
        got = s.viewer.first_avatar
        for _ in range(25):  # the service records its own figure within a watch interval
            info = (await st.client.get(f"/v2/streaming/sessions/{s.id}")).json()
            if info.get("first_frame_ms"):
                break
            await asyncio.sleep(0.2)
        row = {
            "mode": st.mode,
            "run": i,
            "post_s": round(s.post_s, 3),
            "first_frame_s": round(got - s.t_post, 3) if got else None,
            "server_first_frame_s": (
                round(info["first_frame_ms"] / 1000, 3) if info.get("first_frame_ms") else None
            ),
            "load": os.getloadavg(),
        }
        print("  first frame", json.dumps(row), flush=True)
        rows.append(row)
        await st.stop_all()
    return rows


async def steady(st: Stack, n: int, seconds: float) -> dict[str, Any]:
    """N sessions at once; CPU and frame rate over ``seconds`` of steady state."""
    await st.settle()
    sessions = [await st.start_session() for _ in range(n)]
    await wait_avatars(sessions)
    if st.worker is not None:  # the next job process warms up: keep it out of the window
        await st.worker.wait_for("process initialized", st.jobs + 1)
    await asyncio.sleep(1.0)
    roots = {"holder": st.holder, "api": st.api.ps}
    if st.lk.process is not None:
        roots["livekit"] = psutil.Process(st.lk.process.pid)
    before = {k: tree_cpu(p) for k, p in roots.items()}
    frames0 = [s.viewer.frames for s in sessions]
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    after = {k: tree_cpu(p) for k, p in roots.items()}
    frames = [s.viewer.frames for s in sessions]
    cores = {k: cpu_between(before[k], after[k]) / wall for k in roots}
    per_session = cores["holder"] / n
    fps = [(b - a) / wall for a, b in zip(frames0, frames, strict=True)]
    row = {
        "mode": st.mode,
        "sessions": n,
        "with_avatar": sum(s.viewer.first_avatar is not None for s in sessions),
        "holder_processes": len(after["holder"]),
        "processes_changed": set(before["holder"]) != set(after["holder"]),
        "holder_cores": round(cores["holder"], 3),
        "core_per_session": round(per_session, 4),
        "sessions_per_core": round(1 / per_session, 2) if per_session > 0 else None,
        "api_cores": round(cores["api"], 3),
        "livekit_cores": round(cores.get("livekit", float("nan")), 3),
        "fps": [round(f, 1) for f in fps],
        "cpu_ms_per_frame": round(1000 * cores["holder"] / sum(fps), 1) if sum(fps) else None,
        "held_25fps": sum(f >= HOLD_FPS for f in fps),
        "seconds": round(wall, 2),
        "load": os.getloadavg(),
    }
    await st.stop_all()
    return row


# ---------------------------------------------------------------- report


def print_table(mode: str, rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'N':>3} {'procs':>5} {'%core/sess':>10} {'sess/core':>9} {'fps min/med':>12} "
        f"{'>=25fps':>7} {'ms/frame':>8} {'api %core':>9} {'livekit %core':>13}  load 1/5/15"
    )
    print(f"\n{mode} (holder: {'worker + job processes' if mode == 'dispatch' else 'API process'})")
    print(head)
    for r in rows:
        fps = r["fps"]
        spc = r["sessions_per_core"]
        print(
            f"{r['sessions']:>3} {r['holder_processes']:>5} "
            f"{100 * r['core_per_session']:>10.1f} {spc if spc is not None else '-':>9} "
            f"{min(fps):>5.1f}/{statistics.median(fps):<6.1f} "
            f"{r['held_25fps']:>4}/{r['sessions']:<2} {r['cpu_ms_per_frame'] or '-':>8} "
            f"{100 * r['api_cores']:>9.1f} "
            f"{100 * r['livekit_cores']:>13.1f}  "
            + " ".join(f"{x:.2f}" for x in r["load"])
            + (" (avatar missing)" if r["with_avatar"] < r["sessions"] else "")
            + (" (processes changed)" if r["processes_changed"] else "")
        )


def ratios(
    rows: list[dict[str, Any]], firsts: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {"cpu_per_session": {}, "cpu_per_session_with_api": {}}
    lines = []
    by = {(r["mode"], r["sessions"]): r for r in rows}
    for (mode, n), d in sorted(by.items()):
        a = by.get(("inprocess", n))
        if mode != "dispatch" or a is None or not a["core_per_session"]:
            continue
        cpu = d["core_per_session"] / a["core_per_session"]
        total = (d["holder_cores"] + d["api_cores"]) / a["holder_cores"]
        out["cpu_per_session"][n] = round(cpu, 2)
        out["cpu_per_session_with_api"][n] = round(total, 2)
        lines.append(
            f"N={n}: CPU per session dispatch/in-process = {cpu:.2f}x "
            f"(worker + API / API: {total:.2f}x)"
        )
    med: dict[str, float] = {}
    for mode in MODES:
        got = [r["first_frame_s"] for r in firsts if r["mode"] == mode and r["first_frame_s"]]
        if got:
            med[mode] = statistics.median(got)
            out[f"first_frame_{mode}"] = {"median_s": med[mode], "max_s": max(got)}
            lines.append(
                f"first composited avatar frame at the viewer, {mode}: median "
                f"{med[mode]:.2f} s, max {max(got):.2f} s ({len(got)} runs)"
            )
    if len(med) == 2:
        out["first_frame_ratio"] = round(med["dispatch"] / med["inprocess"], 2)
        lines.append(f"first frame dispatch/in-process = {out['first_frame_ratio']:.2f}x (median)")
    return out, lines


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # stop the children on SIGTERM too
    cores = len(os.sched_getaffinity(0))
    print(f"cores: {cores}, load at start: {os.getloadavg()}", flush=True)
    lk = LiveKitServer.start(port=free_port())
    rows: list[dict[str, Any]] = []
    firsts: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="greenroom-scale-") as tmp:
            if args.keep:
                tmp = tempfile.mkdtemp(prefix="greenroom-scale-")
                print(f"logs and data under {tmp}", flush=True)
            for mode in args.modes:
                t = time.perf_counter()
                async with stack(mode, lk, Path(tmp), max(args.sizes) + 1) as st:
                    print(
                        f"{mode}: ready in {time.perf_counter() - t:.1f} s (not timed)", flush=True
                    )
                    await st.settle()
                    s = await st.start_session()  # untimed: the process's first session
                    await wait_avatars([s])
                    await st.stop_all()
                    firsts += await first_frames(st, args.runs)
                    for n in args.sizes:
                        row = await steady(st, n, args.seconds)
                        print("  steady", json.dumps(row), flush=True)
                        rows.append(row)
    finally:
        lk.stop()
    for mode in args.modes:
        print_table(mode, [r for r in rows if r["mode"] == mode])
    summary, lines = ratios(rows, firsts)
    print()
    for line in lines:
        print(line)
    print(f"load at end: {os.getloadavg()} on {cores} cores")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "cores": cores,
                    "args": {k: v for k, v in vars(args).items() if k != "json"},
                    "steady": rows,
                    "first_frame": firsts,
                    "ratios": summary,
                },
                indent=2,
            )
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2], help="sessions at once")
    ap.add_argument("--seconds", type=float, default=10.0, help="steady-state window per size")
    ap.add_argument("--runs", type=int, default=3, help="first-frame runs per mode")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the API's and worker's logs")
    args = ap.parse_args(argv)
    if min(args.sizes) < 1 or args.seconds <= 0 or args.runs < 0:
        ap.error("--sizes must be >= 1, --seconds > 0, --runs >= 0")
    return args


if __name__ == "__main__":
    try:
        asyncio.run(main(parse()))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: children stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)
