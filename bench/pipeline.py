"""Live compositor benchmark: N avatars + N compositors at 720p30 on a real LiveKit server.

Run::

    .venv/bin/python bench/pipeline.py                 # sweep N = 1..6, then the A/V probe
    .venv/bin/python bench/pipeline.py --sizes 1 2 4 --seconds 15 --json out.json

Layout (three processes, so CPU is attributed honestly):

- this process: the LiveKit server (a child), and the N compositors, as a worker would;
- an ``avatars`` child process: the built-in avatars (``LocalAvatar``, 1280x720@30) and
  the viewers; its CPU is reported but not charged to the compositor. Two sources:

  - ``--source session`` (default): N avatars, one room each, one compositor each, as in
    production: the avatars' own cost (render + encode) shares the machine;
  - ``--source shared``: ONE avatar, published once into one room, and N compositors in
    that room (distinct identities, each attached to a connection of its own) all keying
    it; the avatar costs the same at any N (the server forwards its track N times), so
    the compositors are measured almost alone. One viewer watches all N composited tracks;
- the A/V probe: one synthetic avatar (capture timestamps in frame metadata, a white
  flash + a 1 kHz beep once a second) and a viewer in the child process, measuring
  capture -> viewer latency and the audio/video offset the viewer gets, on the
  compositor's tracks and, as the anchor, on the avatar's own tracks at the same viewer.

Per N it reports: compositor added latency p50/p95 (avatar frame received -> composited
frame handed to the encoder), output fps, dropped frames, compositor CPU per session,
and where the compositor process's CPU goes, by thread (decode / keying / encode / rest),
and two anchors timed in the same run (``keying_anchor``): the keying thread's work alone on
a frame the compositor received, and the work bench/keying.py times. At N = 1 it also
compares the viewer's decoded picture with what the compositor encoded (PSNR and SSIM of
luma on every 15th frame), to weigh codecs and layers by CPU per quality.

    .venv/bin/python bench/pipeline.py --source shared --sizes 1 2 3 --no-probe
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

W, H, FPS = 1280, 720, 30
BACKGROUND = "#0044ff"
#: picture quality: every QUALITY_EVERY-th composited frame (by frame id) is compared
QUALITY_EVERY = 15
_TICK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------- CPU accounting
def thread_cpu() -> dict[int, tuple[str, float]]:
    """{tid: (thread name, user+system seconds)} of this process."""
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def classify(name: str) -> str:
    low = name.lower()
    if "greenroom-key" in low:
        return "keying"
    if "decod" in low:
        return "decode"
    if "encod" in low or "vp8" in low or "libvpx" in low or "h264" in low:
        return "encode"
    if low.startswith("python") or low == "mainthread":
        return "python loop"
    return "webrtc other (network, pacing, conversion)"


def cpu_breakdown(before: dict, after: dict, seconds: float) -> tuple[dict, dict]:
    by_class: dict[str, float] = {}
    by_name: dict[str, float] = {}
    for tid, (name, t1) in after.items():
        t0 = before.get(tid, (name, 0.0))[1]
        d = (t1 - t0) / seconds * 100
        by_class[classify(name)] = by_class.get(classify(name), 0.0) + d
        by_name[name] = by_name.get(name, 0.0) + d
    top = {k: v for k, v in sorted(by_name.items(), key=lambda kv: -kv[1]) if v >= 0.3}
    return {k: round(v, 1) for k, v in by_class.items()}, {k: round(v, 1) for k, v in top.items()}


# ----------------------------------------------------------------- child: avatars + probe
async def _encoder_counts(avatar) -> tuple[int, dict[str, float], tuple[int, int]]:
    """The avatar's VP8 encoder so far: frames encoded, seconds spent under each quality
    limitation (``none``, ``cpu``, ``bandwidth``, ``other``), and (key-frame requests it
    received, key frames it encoded) since it was published."""
    from livekit import rtc

    for pub in avatar.room.local_participant.track_publications.values():
        if pub.track is not None and pub.kind == rtc.TrackKind.KIND_VIDEO:
            for st in await pub.track.get_stats():
                if st.WhichOneof("stats") == "outbound_rtp":
                    o = st.outbound_rtp.outbound
                    requests = (int(o.pli_count) + int(o.fir_count), int(o.key_frames_encoded))
                    return o.frames_encoded, dict(o.quality_limitation_durations), requests
    return 0, {}, (0, 0)


_RECEIVE_FIELDS = (
    "packets_received",
    "packets_lost",
    "nack_count",
    "pli_count",
    "frames_received",
    "frames_decoded",
    "frames_dropped",
    "key_frames_decoded",
    "freeze_count",
)


_PER_S = {"frames_received", "frames_decoded", "frames_dropped"}  # as fps; the rest counts


async def inbound_rtp(room, kind: int):
    """The inbound-rtp statistics of the first remote track of ``kind`` (an
    ``rtc.TrackKind``) in ``room``, or None."""
    from greenroom.compositor.video import receiver_stats

    for p in room.remote_participants.values():
        for pub in p.track_publications.values():
            if pub.track is not None and pub.kind == kind:
                return await receiver_stats(pub.track)
    return None


async def _receive_counts(comp) -> dict[str, float]:
    """The compositor's receiver of the avatar's camera so far (cumulative inbound-rtp
    counters), to place lost input frames: the network and server (packets lost, frames
    not received), the decoder (dropped, waiting for a key frame) or the hand-over to
    Python (decoded but not in the compositor's ``frames_in``)."""
    from livekit import rtc

    i = None if comp.room is None else await inbound_rtp(comp.room, rtc.TrackKind.KIND_VIDEO)
    if i is None:
        return {}
    counts = {k: float(getattr(i.received, k)) for k in _RECEIVE_FIELDS[:2]}
    return counts | {k: float(getattr(i.inbound, k)) for k in _RECEIVE_FIELDS[2:]}


async def run_avatars(args: argparse.Namespace) -> None:
    """N built-in avatars, and N viewers that watch the composited tracks."""
    from greenroom.avatars import RoomTarget
    from greenroom.avatars.local import LocalAvatar

    avatars, viewers = [], []
    for i in range(args.count):
        target = RoomTarget(args.url, args.key, args.secret, f"{args.prefix}-{i}")
        noise = {} if args.noise is None else {"noise": args.noise}
        avatars.append(await LocalAvatar.start(target, identity=f"avatar-{i}", **noise))
        viewers.append(await BenchViewer.join(args, f"{args.prefix}-{i}", args.tracks))
    print("READY", flush=True)
    await _wait_stdin("START")  # the parent's measured window starts...
    for v in viewers:
        v.reset()
    t0 = time.process_time()
    w0 = time.monotonic()
    enc0 = [await _encoder_counts(a) for a in avatars]
    await _wait_stdin("STOP")  # ...and ends
    wall = time.monotonic() - w0
    enc1 = [await _encoder_counts(a) for a in avatars]
    for v in viewers:
        v.recording = False
    cpu = (time.process_time() - t0) / wall * 100
    skipped = sum(a.video_stats.skipped for a in avatars)
    frames = sum(a.video_stats.frames for a in avatars)
    lat = sorted(x for v in viewers for x in v.latency_ms)
    print(
        "RESULT "
        + json.dumps(
            {
                "avatar_cpu_pct": cpu,
                "frames": frames,
                "skipped": skipped,
                # what each avatar's encoder produced in the window (a slow compositor input
                # is then either the sender's or the server's)
                "encoded_fps": [
                    round((b[0] - a[0]) / wall, 1) for a, b in zip(enc0, enc1, strict=True)
                ],
                "limited_s": [
                    {k: round(v - a[1].get(k, 0.0), 1) for k, v in b[1].items() if k != "none"}
                    for a, b in zip(enc0, enc1, strict=True)
                ],
                # since each avatar was published: key-frame requests it got, key frames it
                # sent (a compositor's receiver that waits for one: did the request arrive?)
                "key_frame_requests_and_key_frames": [b[2] for b in enc1],
                "viewer_fps_min": min(v.fps_min(wall) for v in viewers),
                "viewer_latency_ms_p50": _p(lat, 50),
                "viewer_latency_ms_p95": _p(lat, 95),
            }
        ),
        flush=True,
    )
    for v in viewers:
        await v.aclose()
    for a in avatars:
        await a.aclose()


async def _wait_stdin(word: str) -> None:
    while (await asyncio.to_thread(sys.stdin.readline)).strip() != word:
        pass


class BenchViewer:
    """Watches the compositors' tracks in one room (``tracks`` of them); latency =
    compositor's receive of the avatar frame (its ``user_timestamp`` when the avatar sends
    none) -> this viewer's receive."""

    def __init__(self, tracks: int, frames_dir: str | None = None) -> None:
        from livekit import rtc

        self.room = rtc.Room()
        self.tracks = tracks
        # received luma planes of every QUALITY_EVERY-th frame (by frame id), for the
        # parent's picture-quality figure; only while ``recording``
        self.frames_dir = Path(frames_dir) if frames_dir else None
        self.recording = False
        self.frames: dict[str, int] = {}  # per composited track
        self.latency_ms: list[float] = []
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def join(cls, args: argparse.Namespace, room_name: str, tracks: int) -> BenchViewer:
        from livekit import rtc

        from greenroom.compositor import ATTR_ROLE, ROLE_COMPOSITOR, TRACK_NAME
        from greenroom.tokens import viewer_token

        v = cls(tracks, getattr(args, "frames_dir", None))

        def maybe(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR and pub.name == TRACK_NAME:
                pub.set_subscribed(True)
                if pub.simulcasted:  # a viewer on a good link takes the full picture
                    low = args.viewer_layer == "low"
                    q = (
                        rtc.VideoQuality.VIDEO_QUALITY_LOW
                        if low
                        else rtc.VideoQuality.VIDEO_QUALITY_HIGH
                    )
                    pub.set_video_quality(q)

        v.room.on("track_published", maybe)

        @v.room.on("track_subscribed")
        def _sub(track: rtc.Track, *_: object) -> None:
            v.tasks.append(asyncio.create_task(v._drain(track)))

        token = viewer_token(args.key, args.secret, room=room_name, identity="bench-viewer")
        await v.room.connect(args.url, token, rtc.RoomOptions(auto_subscribe=False))
        return v

    async def _drain(self, track: object) -> None:
        from livekit import rtc

        sid: str = track.sid  # type: ignore[attr-defined]
        fmt = rtc.VideoBufferType.I420 if self.frames_dir else None
        async for ev in rtc.VideoStream(track, capacity=1, format=fmt):  # type: ignore[arg-type]
            self.frames[sid] = self.frames.get(sid, 0) + 1
            meta = ev.metadata
            if meta is not None and meta.user_timestamp:
                self.latency_ms.append(time.time_ns() / 1e6 - meta.user_timestamp / 1e3)
            if (
                self.frames_dir
                and self.recording
                and meta is not None
                and meta.frame_id
                and meta.frame_id % QUALITY_EVERY == 0
            ):
                f = ev.frame
                y = np.frombuffer(f.data, np.uint8, count=f.width * f.height)
                np.save(self.frames_dir / f"{meta.frame_id}.npy", y.reshape(f.height, f.width))

    def reset(self) -> None:
        self.frames = dict.fromkeys(self.frames, 0)
        self.latency_ms.clear()
        self.recording = True

    def fps_min(self, wall: float) -> float:
        """The slowest composited track's frame rate (a track never seen counts as 0)."""
        counts = list(self.frames.values())
        counts += [0] * (self.tracks - len(counts))
        return min(counts) / wall

    async def aclose(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.room.disconnect()


async def run_probe(args: argparse.Namespace) -> None:
    """One synthetic avatar + one viewer; measures capture->viewer latency and A/V offset."""
    from livekit import rtc

    from greenroom.compositor import ATTR_ROLE, ROLE_COMPOSITOR, TRACK_NAME
    from greenroom.compositor.synthetic import DiscScene, SyntheticAvatar
    from greenroom.tokens import viewer_token

    room_name = f"{args.prefix}-probe"
    avatar = SyntheticAvatar(scene=DiscScene(motion=False))
    await avatar.start(args.url, args.key, args.secret, room_name, "avatar-probe")
    viewer = rtc.Room()
    e2e: list[float] = []
    # per source: "comp" (the compositor's tracks) and "raw" (the avatar's own, the anchor)
    flashes: dict[str, list[float]] = {"comp": [], "raw": []}
    beeps: dict[str, list[float]] = {"comp": [], "raw": []}
    tasks: list[asyncio.Task[None]] = []

    async def video(track: rtc.Track, source: str) -> None:
        was_bright = False
        async for ev in rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.I420):
            now = time.monotonic()
            meta = ev.metadata
            if source == "comp" and meta is not None and meta.user_timestamp:
                e2e.append(time.time_ns() / 1e6 - meta.user_timestamp / 1e3)
            f = ev.frame
            y = np.frombuffer(f.data, np.uint8)[: f.width * f.height].reshape(f.height, f.width)
            bright = (
                float(
                    y[
                        f.height // 2 - 8 : f.height // 2 + 8, f.width // 2 - 8 : f.width // 2 + 8
                    ].mean()
                )
                > 200
            )
            if bright and not was_bright:
                flashes[source].append(now)
            was_bright = bright

    async def audio(track: rtc.Track, source: str) -> None:
        loud_before = False
        async for ev in rtc.AudioStream(
            track, sample_rate=48_000, num_channels=1, frame_size_ms=10
        ):
            now = time.monotonic()
            s = np.frombuffer(ev.frame.data, np.int16)
            loud = int(np.abs(s.astype(np.int32)).max(initial=0)) > 4000
            if loud and not loud_before:
                # onset within this 10 ms frame: back-date to the first loud sample
                first = int(np.argmax(np.abs(s.astype(np.int32)) > 4000))
                beeps[source].append(now - (len(s) - first) / 48_000)
            loud_before = loud

    def source_of(p: rtc.RemoteParticipant) -> str:
        return "comp" if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR else "raw"

    @viewer.on("track_published")
    def _pub(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if source_of(p) == "raw" or pub.name == TRACK_NAME or pub.kind == rtc.TrackKind.KIND_AUDIO:
            pub.set_subscribed(True)
            if pub.kind == rtc.TrackKind.KIND_VIDEO and pub.simulcasted:
                pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)

    @viewer.on("track_subscribed")
    def _sub(track: rtc.Track, _pub: object, p: rtc.RemoteParticipant) -> None:
        fn = video if track.kind == rtc.TrackKind.KIND_VIDEO else audio
        tasks.append(asyncio.create_task(fn(track, source_of(p))))

    token = viewer_token(args.key, args.secret, room=room_name, identity="probe-viewer")
    await viewer.connect(args.url, token, rtc.RoomOptions(auto_subscribe=False))
    for p in viewer.remote_participants.values():
        for pub in p.track_publications.values():
            _pub(pub, p)
    print("READY", flush=True)
    await asyncio.sleep(args.seconds)
    offsets: dict[str, list[float]] = {}
    for source in ("comp", "raw"):
        offsets[source] = []
        for fl in flashes[source]:
            near = [b for b in beeps[source] if abs(b - fl) < 0.5]
            if near:
                b = min(near, key=lambda b: abs(b - fl))
                offsets[source].append((fl - b) * 1000)  # positive: audio before the picture
    skip = len(e2e) // 5  # ignore the first fifth (subscription warm-up)
    lat = sorted(e2e[skip:])
    print(
        "RESULT "
        + json.dumps(
            {
                "e2e_ms_p50": _p(lat, 50),
                "e2e_ms_p95": _p(lat, 95),
                "frames": len(e2e),
                "av_offsets_ms": [round(o, 1) for o in offsets["comp"]],
                "raw_av_offsets_ms": [round(o, 1) for o in offsets["raw"]],
                "flashes": len(flashes["comp"]),
                "beeps": len(beeps["comp"]),
            }
        ),
        flush=True,
    )
    for t in tasks:
        t.cancel()
    await viewer.disconnect()
    await avatar.aclose()


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


# ----------------------------------------------------------------- parent: compositors
class Child:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        self.cpu0 = _child_cpu(self.proc.pid)

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"child did not print {prefix!r}")

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _child_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _shared_compositor(server, room_name: str, i: int, options) -> tuple:
    """Compositor ``i`` of N on the one shared avatar ``avatar-0``: a connection of its own
    with a distinct identity (``Compositor.start`` would give all N the same one)."""
    from livekit import rtc

    from greenroom.backgrounds import BackgroundSpec
    from greenroom.compositor import Compositor
    from greenroom.tokens import agent_token

    bg = BackgroundSpec.parse(BACKGROUND)
    token = agent_token(
        server.api_key,
        server.api_secret,
        room=room_name,
        identity=f"greenroom-avatar-0-{i}",
        name="Greenroom",
        attributes=Compositor.attributes_for("avatar-0", bg),
    )
    room = rtc.Room()
    # the compositor subscribes to what it reads; auto-subscribe would do it before attach
    await room.connect(server.url, token, rtc.RoomOptions(auto_subscribe=False))
    return await Compositor.attach(room, "avatar-0", bg, options), room


def _spy_input(comp, keep: list) -> None:
    """Keep one avatar frame as the compositor received it (for the keying anchor)."""
    frames = comp._frames
    render = frames._render

    def spy(data, width, height, t):  # same signature as FrameLoop._render
        if not keep:
            keep.append((bytes(data), width, height))
        return render(data, width, height, t)

    frames._render = spy


class SentFrames:
    """Luma of every QUALITY_EVERY-th frame the compositors hand to the encoder, by frame id
    (one compositor: frame ids are per published track)."""

    def __init__(self) -> None:
        from greenroom.compositor.video import VideoOutput

        self.recording = False
        self.luma: dict[int, np.ndarray] = {}
        capture = VideoOutput.capture
        sent = self

        def spy(out, data, width, height, user_us):  # same signature as VideoOutput.capture
            fid = (out._frame_id + 1) & 0xFFFFFFFF
            if sent.recording and fid % QUALITY_EVERY == 0:
                y = np.frombuffer(data, np.uint8, count=width * height)
                sent.luma[fid] = y.reshape(height, width).copy()
            return capture(out, data, width, height, user_us)

        self._undo = lambda: setattr(VideoOutput, "capture", capture)
        VideoOutput.capture = spy  # type: ignore[method-assign]

    def close(self) -> None:
        self._undo()


def received_quality(sent: dict[int, np.ndarray], received_dir: Path) -> dict:
    """PSNR and SSIM of the viewer's decoded luma against what the compositor encoded, on
    the frames both sides kept (same frame id, same size)."""
    from skimage.metrics import structural_similarity

    psnr, ssim, sizes = [], [], set()
    for path in sorted(received_dir.glob("*.npy")):
        got = np.load(path)
        ref = sent.get(int(path.stem))
        sizes.add(f"{got.shape[1]}x{got.shape[0]}")
        if ref is None or ref.shape != got.shape:
            continue
        mse = float(np.mean((ref.astype(np.float64) - got) ** 2))
        psnr.append(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))
        ssim.append(float(structural_similarity(ref, got, data_range=255)))
    return {
        "received_frames_compared": len(psnr),
        "received_sizes": sorted(sizes),
        "received_psnr_y_db": round(statistics.mean(psnr), 2) if psnr else None,
        "received_ssim_y": round(statistics.mean(ssim), 4) if ssim else None,
    }


def keying_anchor(sample: tuple[bytes, int, int], n: int = 60) -> dict:
    """Anchors for the keying thread, same run, one thread, CPU ms per frame:

    - ``scene_reused_buffer``: the live path's work (``Scene.render_i420``) alone, on a
      frame the compositor received, into a reused output buffer (the compositor now);
    - ``scene_fresh_buffer``: the same into a fresh buffer per frame (the compositor before);
    - ``keyer_synthetic_clip``: what bench/keying.py times, ``ChromaKeyer.composite_i420``
      on its clean synthetic frame (so live/microbenchmark splits into content vs path).
    """
    from greenroom.backgrounds import BackgroundSpec, Scene
    from greenroom.keying import ChromaKeyer, I420Frame
    from greenroom.keying.synthetic import SyntheticClip

    data, w, h = sample
    src = I420Frame.from_buffer(bytearray(data), w, h)
    scene = Scene(background=BackgroundSpec.parse(BACKGROUND), mode="chroma")
    nbytes = I420Frame.nbytes_for(w, h)
    reused = bytearray(nbytes)
    clip = I420Frame.from_rgb(SyntheticClip(w, h).frame(0)[0])
    bg = I420Frame.blank(w, h, (40, 70, 160))
    keyer, kout = ChromaKeyer(key_color=(0, 177, 64)), I420Frame.empty(w, h)

    def reuse() -> None:
        scene.render_i420(src, 0.0, out=I420Frame.from_buffer(reused, w, h))

    def fresh() -> None:
        scene.render_i420(src, 0.0, out=I420Frame.from_buffer(bytearray(nbytes), w, h))

    def micro() -> None:
        keyer.composite_i420(clip, bg, kout)

    out = {}
    runs = (("scene_reused_buffer", reuse), ("scene_fresh_buffer", fresh))
    for name, fn in (*runs, ("keyer_synthetic_clip", micro)):
        for _ in range(5):
            fn()
        samples = []
        for _ in range(n):
            c0 = time.thread_time()
            fn()
            samples.append((time.thread_time() - c0) * 1000)
        out[name] = round(statistics.median(samples), 2)
    scene.close()
    return out


async def run_size(
    server,
    n: int,
    seconds: float,
    warmup: float,
    opts: dict,
    source: str = "session",
    avatar_noise: float | None = None,
    viewer_layer: str = "high",
) -> dict:
    import tempfile

    from greenroom.compositor import Compositor, CompositorOptions

    shared = source == "shared"
    prefix = f"bench{n}-{int(time.time())}"
    # picture quality at the viewer: with one compositor (frame ids are per track)
    full = n == 1 and viewer_layer == "high"
    received_dir = Path(tempfile.mkdtemp(prefix="greenroom-bench-")) if full else None
    sent = SentFrames() if received_dir else None

    def stop_quality() -> dict:
        """Unhook the encoder spy, score what both sides kept, remove the viewer's files."""
        if sent is None or received_dir is None:
            return {}
        sent.close()
        try:
            return received_quality(sent.luma, received_dir)
        finally:
            shutil.rmtree(received_dir, ignore_errors=True)

    child = Child(
        [
            "avatars",
            *(["--frames-dir", str(received_dir)] if received_dir else []),
            *(["--noise", str(avatar_noise)] if avatar_noise is not None else []),
            "--viewer-layer",
            viewer_layer,
            *server_argv(server),
            "--count",
            "1" if shared else str(n),
            "--tracks",
            str(n) if shared else "1",
            "--prefix",
            prefix,
            "--seconds",
            str(warmup + seconds),
        ]
    )
    await asyncio.to_thread(child.wait_line, "READY", 120)
    comps, rooms, sample = [], [], []
    for i in range(n):
        options = CompositorOptions(stats_interval=0, **opts)
        if shared:
            comp, room = await _shared_compositor(server, f"{prefix}-0", i, options)
            rooms.append(room)
        else:
            target = _Target(server.url, server.api_key, server.api_secret, f"{prefix}-{i}")
            comp = await Compositor.start(target, f"avatar-{i}", BACKGROUND, options)
        _spy_input(comp, sample)  # the first frame any of them keys
        comps.append(comp)
    try:
        for c in comps:
            await c.wait_first_frame(60)
    except TimeoutError as exc:  # the machine cannot even start N sessions
        child.proc.kill()
        await asyncio.gather(*(c.aclose() for c in comps))
        await asyncio.gather(*(r.disconnect() for r in rooms))
        stop_quality()
        return {"n": n, "error": str(exc), "dropped": -1, "output_fps_min": 0.0}
    await asyncio.sleep(warmup)
    before = [c.metrics() for c in comps]
    rx0 = [await _receive_counts(c) for c in comps]
    child.send("START")
    if sent:
        sent.recording = True
    t0, cpu0, th0 = time.monotonic(), time.process_time(), thread_cpu()
    await asyncio.sleep(seconds)
    child.send("STOP")
    if sent:
        sent.recording = False
    elapsed = time.monotonic() - t0
    cpu = (time.process_time() - cpu0) / elapsed * 100
    by_class, by_name = cpu_breakdown(th0, thread_cpu(), elapsed)
    after = [c.metrics() for c in comps]
    rx1 = [await _receive_counts(c) for c in comps]
    result_line = await asyncio.to_thread(child.wait_line, "RESULT", warmup + seconds + 60)
    avatars = json.loads(result_line)
    await asyncio.to_thread(child.finish)
    await asyncio.gather(*(c.aclose() for c in comps))
    await asyncio.gather(*(r.disconnect() for r in rooms))
    anchor = keying_anchor(sample[0]) if sample else {}
    quality = stop_quality()
    fps = [
        (a["frames_out"] - b["frames_out"]) / elapsed for a, b in zip(after, before, strict=True)
    ]
    fin = [(a["frames_in"] - b["frames_in"]) / elapsed for a, b in zip(after, before, strict=True)]
    pairs = list(zip(after, before, strict=True))
    dropped = sum(a["dropped"] - b["dropped"] for a, b in pairs)
    # (no frame out in the window: no per-frame figure rather than a division by ~0)
    per_frame = {k: round(v * 10 / sum(fps), 2) for k, v in by_class.items()} if sum(fps) else {}
    return {
        "n": n,
        "source": source,
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "latency_ms_p50": round(statistics.median(a["latency_ms_p50"] for a in after), 1),
        "latency_ms_p95": round(max(a["latency_ms_p95"] for a in after), 1),
        "keying_ms_p50": round(statistics.median(a["keying_ms_p50"] for a in after), 2),
        "keying_ms_p95": round(max(a["keying_ms_p95"] for a in after), 2),
        "input_fps_min": round(min(fin), 1),
        "output_fps_min": round(min(fps), 1),
        "output_fps_mean": round(statistics.mean(fps), 1),
        "dropped": dropped,
        "dropped_by_reason": {
            r: sum(a["dropped_by_reason"][r] - b["dropped_by_reason"][r] for a, b in pairs)
            for r in after[0]["dropped_by_reason"]
        },
        # the compositors' hold for a voice that reached them later than the picture
        "voice_lag_ms": [a["voice_lag_ms"] for a in after],
        "compositor_cpu_pct": round(cpu, 1),
        "cpu_pct_per_session": round(cpu / n, 1),
        "cpu_by_stage_pct": by_class,
        # CPU ms per composited frame (all sessions): what each stage costs, load-independent
        "cpu_ms_per_frame_by_stage": per_frame,
        # the keying thread live vs the same work alone on a received frame, same run
        "keying_cpu_ms_live": per_frame.get("keying"),
        "keying_anchor": anchor,
        "cpu_by_thread_pct": by_name,
        "avatar_process_cpu_pct": round(avatars["avatar_cpu_pct"], 1),
        "avatar_frames_skipped": avatars["skipped"],
        "avatar_encoded_fps": avatars["encoded_fps"],
        "avatar_encoder_limited_s": avatars["limited_s"],
        "avatar_key_frame_requests_and_key_frames": avatars["key_frame_requests_and_key_frames"],
        # per compositor, over the window: what its receiver got and did with it
        "compositor_receive": [
            {
                k: round((b.get(k, 0.0) - a.get(k, 0.0)) / (elapsed if k in _PER_S else 1), 1)
                for k in b
            }
            | {"frames_in_fps": round(f, 1)}
            for a, b, f in zip(rx0, rx1, fin, strict=True)
        ],
        "viewer_fps_min": round(avatars["viewer_fps_min"], 1),
        "viewer_latency_ms_p50": avatars["viewer_latency_ms_p50"],
        "viewer_latency_ms_p95": avatars["viewer_latency_ms_p95"],
        "audio_offset_ms": [
            round(a["audio_offset_ms"], 1) for a in after if a["audio_offset_ms"] is not None
        ],
        # N = 1: the viewer's decoded picture against what the compositor encoded
        **quality,
    }


async def run_av_probe(server, seconds: float) -> dict:
    from greenroom.compositor import Compositor, CompositorOptions

    prefix = f"benchav-{int(time.time())}"
    child = Child(
        [
            "probe",
            *server_argv(server),
            "--prefix",
            prefix,
            "--seconds",
            str(seconds + 3),
        ]
    )
    await asyncio.to_thread(child.wait_line, "READY", 60)
    target = _Target(server.url, server.api_key, server.api_secret, f"{prefix}-probe")
    comp = await Compositor.start(
        target, "avatar-probe", "#0044ff", CompositorOptions(stats_interval=0)
    )
    await comp.wait_first_frame(60)
    result = json.loads(await asyncio.to_thread(child.wait_line, "RESULT", seconds + 60))
    m = comp.metrics()
    await asyncio.to_thread(child.finish)
    await comp.aclose()
    offs = result["av_offsets_ms"]
    result.update(
        {
            "compositor_latency_ms_p50": m["latency_ms_p50"],
            "compositor_latency_ms_p95": m["latency_ms_p95"],
            "capture_to_publish_ms_p50": m["capture_to_publish_ms_p50"],
            "capture_to_publish_ms_p95": m["capture_to_publish_ms_p95"],
            "compositor_audio_offset_ms": m["audio_offset_ms"],
            "av_offset_ms_median": round(statistics.median(offs), 1) if offs else None,
            "av_offset_ms_range": [min(offs), max(offs)] if offs else None,
            # the anchor: the avatar's own tracks at the same viewer, same run
            "raw_av_offset_ms_median": (
                round(statistics.median(raw), 1) if (raw := result["raw_av_offsets_ms"]) else None
            ),
        }
    )
    return result


def server_argv(server: Any) -> list[str]:
    """The child roles' arguments that name the LiveKit server and its API key."""
    return ["--url", server.url, "--key", server.api_key, "--secret", server.api_secret]


class _Target:
    def __init__(self, url: str, api_key: str, api_secret: str, room: str) -> None:
        self.url, self.api_key, self.api_secret, self.room = url, api_key, api_secret, room


async def main_parent(args: argparse.Namespace) -> None:
    from greenroom.livekit_server import LiveKitServer, free_port

    server = LiveKitServer.start(port=free_port())
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "config": {
            "codec": args.codec,
            "simulcast": not args.no_simulcast,
            "dynacast": args.dynacast,
            "source": args.source,
            "fresh_buffers": args.fresh_buffers,
            "avatar_noise": args.avatar_noise,
            "viewer_layer": args.viewer_layer,
        },
    }
    try:
        rows = []
        for n in [] if args.probe_only else args.sizes:
            opts = {
                "video_codec": args.codec,
                "simulcast": not args.no_simulcast,
                "dynacast": args.dynacast,
                **({"max_bitrate": args.max_bitrate} if args.max_bitrate else {}),
            }
            row = await run_size(
                server,
                n,
                args.seconds,
                args.warmup,
                opts,
                args.source,
                args.avatar_noise,
                args.viewer_layer,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
            if "error" in row:
                break
        results["sizes"] = rows
        if rows:
            ok = [r["n"] for r in rows if r["dropped"] == 0 and r["output_fps_min"] >= FPS - 1]
            results["largest_n_without_drops"] = max(ok) if ok else 0
            # if compositors had the 2 cores to themselves (avatars and viewers elsewhere)
            # CPU per composited frame x 30 fps (per frame, so starved runs do not look cheap)
            per = min(
                (
                    sum(r["cpu_ms_per_frame_by_stage"].values()) * FPS / 10
                    for r in rows
                    if "error" not in r and r["cpu_ms_per_frame_by_stage"]
                ),
                default=None,
            )
            if per:
                results["sessions_per_machine_by_cpu"] = round((os.cpu_count() or 1) * 100 / per, 1)
        if not args.no_probe:
            results["av_probe"] = await run_av_probe(server, args.seconds)
            print(json.dumps(results["av_probe"]), flush=True)
    finally:
        server.stop()
    results["machine"]["load_after"] = os.getloadavg()
    _print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _print_table(results: dict) -> None:
    print(
        "\n N | lat p50 | lat p95 | key p50 | fps in(min) | fps out(min) | dropped | CPU/session | avatar skips"
    )
    for r in results.get("sizes", []):
        if "error" in r:
            print(f"{r['n']:2d} | {r['error']}")
            continue
        print(
            f"{r['n']:2d} | {r['latency_ms_p50']:6.1f}  | {r['latency_ms_p95']:6.1f}  | "
            f"{r['keying_ms_p50']:6.2f}  | {r['input_fps_min']:10.1f}  | {r['output_fps_min']:11.1f}  | "
            f"{r['dropped']:7d} | {r['cpu_pct_per_session']:9.1f}%  | {r['avatar_frames_skipped']}"
        )
        print(
            f"    dropped by reason: {r['dropped_by_reason']}; frames held for the voice "
            f"(ms, per compositor): {r['voice_lag_ms']}"
        )
        print("    CPU by stage (% of one core):", r["cpu_by_stage_pct"])
        print("    CPU ms per frame by stage:", r["cpu_ms_per_frame_by_stage"])
        print(
            f"    keying CPU ms/frame live {r['keying_cpu_ms_live']} vs alone (same frame, "
            f"same run) {r['keying_anchor']}; load {r['load_avg_1m']}"
        )
        print(
            f"    avatars' encoders: fps {r['avatar_encoded_fps']}, seconds limited "
            f"{r['avatar_encoder_limited_s']}; since published, (key-frame requests received, "
            f"key frames encoded) {r['avatar_key_frame_requests_and_key_frames']}"
        )
        print(f"    compositors' receivers (fps; counts in the window): {r['compositor_receive']}")
        print(
            f"    viewer: fps min {r['viewer_fps_min']}, compositor-in -> viewer latency "
            f"p50 {r['viewer_latency_ms_p50']} / p95 {r['viewer_latency_ms_p95']} ms"
        )
        if r.get("received_frames_compared") is not None:
            print(
                f"    picture at the viewer vs encoded: PSNR(Y) {r['received_psnr_y_db']} dB, "
                f"SSIM(Y) {r['received_ssim_y']} over {r['received_frames_compared']} frames "
                f"(received sizes {r['received_sizes']})"
            )
    print("largest N without drops:", results.get("largest_n_without_drops"))
    print(
        "sessions the CPUs could carry for compositors alone:",
        results.get("sessions_per_machine_by_cpu"),
    )
    if "av_probe" in results:
        print("A/V probe:", results["av_probe"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="role")
    for role in ("avatars", "probe"):
        p = sub.add_parser(role, allow_abbrev=False)
        p.add_argument("--url", required=True)
        p.add_argument("--key", required=True)
        p.add_argument("--secret", required=True)
        p.add_argument("--prefix", required=True)
        p.add_argument("--seconds", type=float, required=True)
        p.add_argument("--count", type=int, default=1)
        p.add_argument("--warmup", type=float, default=0.0)
        p.add_argument("--tracks", type=int, default=1, help="composited tracks per room")
        p.add_argument("--frames-dir", help="save sampled received luma planes here")
        p.add_argument("--noise", type=float, help="the avatars' sensor noise (levels)")
        p.add_argument("--viewer-layer", default="high", choices=["high", "low"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument(
        "--source",
        choices=["session", "shared"],
        default="session",
        help="session: one avatar per compositor; shared: one avatar keyed by N compositors",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per N")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--probe-only", action="store_true")
    parser.add_argument("--codec", default="vp8", choices=["vp8", "h264", "vp9", "av1"])
    parser.add_argument("--no-simulcast", action="store_true")
    parser.add_argument(
        "--avatar-noise",
        type=float,
        help="sensor noise of the built-in avatars, levels (default: what LocalAvatar publishes)",
    )
    parser.add_argument(
        "--max-bitrate", type=int, help="bits/s of the top layer (default: the compositor's)"
    )
    parser.add_argument(
        "--viewer-layer",
        default="high",
        choices=["high", "low"],
        help="the simulcast layer the benchmark's viewers take: high (1280x720, decoded on "
        "this machine as a viewer would elsewhere) or low (320x180: the machine holds little "
        "more than a server does; no picture-quality figure)",
    )
    parser.add_argument(
        "--dynacast", action="store_true", help="encode only the simulcast layers viewers take"
    )
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument(
        "--fresh-buffers",
        action="store_true",
        help="key into a fresh output buffer per frame, as the compositor did before (A/B)",
    )
    args = parser.parse_args()
    if getattr(args, "fresh_buffers", False):
        from greenroom.compositor.frames import FrameLoop

        FrameLoop._out_buffer = lambda self, nbytes: bytearray(nbytes)  # type: ignore[method-assign]
    if args.role == "avatars":
        asyncio.run(run_avatars(args))
    elif args.role == "probe":
        asyncio.run(run_probe(args))
    else:
        asyncio.run(main_parent(args))


if __name__ == "__main__":
    main()
