"""Audio/video offset at a real browser viewer: headless Chromium + livekit-client.

Run::

    .venv/bin/python bench/av_browser.py                  # 15 measured seconds
    .venv/bin/python bench/av_browser.py --seconds 30 --json out.json
    .venv/bin/python bench/av_browser.py --sync-streams   # room with LiveKit's sync_streams
    .venv/bin/python bench/av_browser.py --page-audio-delay-ms 100   # check the page's timing
    .venv/bin/python bench/av_browser.py --beep-shift-ms 100         # check it end to end
    .venv/bin/python bench/av_browser.py --lip-sync-hold 0 --no-viewer-hint  # as before

What runs (as ``bench/pipeline.py --probe-only`` does, with a browser as the viewer):

- a LiveKit server on loopback (``greenroom.livekit_server``), default room settings;
- a child process (this file, role ``avatar``): the synthetic probe avatar
  (``SyntheticAvatar``, ``DiscScene(motion=False)``, its two pictures rendered once; it
  notes when each beep is queued): once a second a white flash of the disc and a 60 ms
  1 kHz beep, meant for the same instant (its audio skips ahead when it falls behind the
  wall clock, so a stall does not shift every later beep);
- in this process: a ``Compositor`` keying the avatar and republishing video + audio;
- a tiny HTTP server on 127.0.0.1 serving one inline page, its AudioWorklet and
  livekit-client's ESM build (``src/greenroom/web/node_modules/livekit-client``, the
  library the product's viewer bundle is built from);
- headless Chromium (Debian's, launched by Playwright with the flags of
  ``tests/fixtures/chromium.py``). The page joins with a viewer token and subscribes, as
  the product's viewer does (no adaptive stream, top layer), to the compositor's video
  (``greenroom``) + audio and to the avatar's own camera + microphone (the anchor).

What the page measures, per source (``comp``: the compositor's tracks; ``raw``: the
avatar's own), all on the ``performance.now()`` clock:

- video: each track plays in a (small, visible) ``<video>``; ``requestVideoFrameCallback``
  reads the mean luma of a 16x16 centre crop of every presented frame (the Y plane through
  WebCodecs ``VideoFrame.copyTo``, else a canvas); a flash onset is the first frame with
  luma > 200, timed by ``metadata.expectedDisplayTime``;
- audio: each remote audio track is attached to a muted ``<audio>`` element (Chromium
  pulls a remote track's audio out of NetEq, its jitter buffer, only for a playing media
  element) and fed through a ``MediaStreamAudioSourceNode`` into an ``AudioWorklet`` that
  finds the first sample over 0.12 (pipeline.py's threshold) after >= 30 ms of quiet, at
  context time ``currentTime + i / sampleRate``, mapped by ``getOutputTimestamp()`` to
  when the graph plays that sample out;
- a second audio tap with no WebAudio: a ``MediaStreamTrackProcessor`` on the same track
  sees the 10 ms chunks as NetEq hands them out; ``AudioData.timestamp`` (Chromium's
  monotonic clock) is mapped by the smallest (arrival - timestamp) seen (``pulled``);
- offset = flash display time - beep time, ms; positive: audio before the picture (the
  sign of pipeline.py). Flashes are matched with the nearest beep within 500 ms of the
  offsets' circular mean. Greenroom's target is +-60 ms, LiveKit's window +45 / -125 ms;
- the anchor at the source (``sender``): at the avatar, flash capture time - the time the
  beep's first chunk was queued into the ``AudioSource``, over the same seconds; the
  difference (``browser_adds_ms``) is what transport, server, compositor and browser add.

Also printed: each receiver's mean jitter-buffer delay and target over the measured
seconds (``getStats``), and the stream id (``msid``) each track came in. libwebrtc only
lip-syncs an audio and a video track of one stream. LiveKit v1.13 sends each track in a
stream of its own (``PA_x|TR_y``) unless the room has ``sync_streams`` (server config
``room.sync_streams`` or ``CreateRoomRequest.sync_streams``); then a participant's camera
and microphone share ``PA_x|camera``. ``--sync-streams`` creates the room that way.
The room gets the ``min_playout_delay`` the API gives a session's room
(``--min-playout-delay MS``, 0 for none): every receiver of its video, the compositor
first and then the browser, holds the picture at least that long, to meet the voice that
the audio jitter buffers hold back.
The page, as Greenroom's viewer page does, also asks its receiver of the composited video
for that delay itself (``RemoteTrack.setPlayoutDelay``; ``--no-viewer-hint``: it does not),
because LiveKit's request can miss a receiver, and raises it while the browser holds the
composited voice longer than a quiet one does (the viewer's own ``lib/lip_sync.ts``, served
from its build; ``--no-viewer-balance``: the room's delay only); the avatar's own video is
left to LiveKit.
The compositor holds its frames for a voice that reaches it late (``--lip-sync-hold S``,
the compositor option; 0 never holds); the hold it used over the window is printed.

Caveats of the measurement:

- the WebAudio figure includes the graph's own path: the FIFO between the track and the
  graph and the context's output latency (``baseLatency`` + ``outputLatency``; headless
  Chromium without a sound card plays into a fake output, 10 + 30 ms here). The ``<audio>``
  element that really plays the track has an output path of its own; so the truth for a
  listener lies between ``pulled`` (NetEq's hand-out, no output latency) and the WebAudio
  figure (``graph_ms``, the difference for the same beeps, is printed: ~45-55 ms here);
- headless display timing: there is no screen; the compositor ticks on a synthetic 60 Hz
  clock, so ``expectedDisplayTime`` is a vsync estimate (+-17 ms), and a flash frame the
  page did not present (busy machine) makes the onset late by a frame or more;
- the sender anchor is taken where the avatar hands audio to the SDK; the SDK's 30 ms
  queue and the video encoder's own latency are not in it;
- on a 2-core machine the server, avatar, compositor and browser share the CPUs with
  whatever else runs; ``sender`` shows what is left of the avatar's own skew.
- checks of the instrument: ``--page-audio-delay-ms N`` puts a ``DelayNode`` of N ms
  before the worklet: the WebAudio offset must move by -N ms against ``pulled`` in the
  same run (``graph_ms`` + N); ``--beep-shift-ms N`` makes the avatar beep N ms after its
  flash: ``sender`` and the offsets must move by -N ms, ``browser_adds_ms`` not at all.

Output: one line ``RESULT {json}`` and a short summary; ``--json``/``--events`` write the
result and every timed flash and beep to files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from greenroom.compositor.options import CompositorOptions
from greenroom.config import VIDEO_PLAYOUT_DELAY_MS

ROOT = Path(__file__).resolve().parents[1]
LIVEKIT_CLIENT = ROOT / "src/greenroom/web/node_modules/livekit-client/dist/livekit-client.esm.mjs"
LIP_SYNC_JS = ROOT / "src/greenroom/web/static/build/lib/lip_sync.js"  # the viewer's own
AVATAR_IDENTITY = "avatar-probe"
BACKGROUND = "#0044ff"
MATCH_S = 0.5  # a flash and a beep further apart than this are not the same event
WARMUP_S = 3.0  # after every track shows data, before the measured seconds

# ----------------------------------------------------------------- the page
WORKLET_JS = r"""
// One per audio track: finds beep onsets (first sample over the threshold after >= 30 ms
// of quiet) and posts their context time; every second, a heartbeat with the peak level.
class Onset extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.th = options.processorOptions.threshold;
    this.quietNeeded = Math.round(sampleRate * 0.03);
    this.quiet = this.quietNeeded;
    this.blocks = 0;
    this.fed = 0;
    this.peak = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    this.blocks++;
    if (ch) {
      this.fed++;
      for (let i = 0; i < ch.length; i++) {
        const a = Math.abs(ch[i]);
        if (a > this.peak) this.peak = a;
        if (a > this.th) {
          if (this.quiet >= this.quietNeeded) {
            this.port.postMessage({ t: currentTime + i / sampleRate });
          }
          this.quiet = 0;
        } else {
          this.quiet++;
        }
      }
    }
    if (this.blocks % 375 === 0) {
      this.port.postMessage({ blocks: this.blocks, fed: this.fed, peak: this.peak });
      this.peak = 0;
    }
    return true;
  }
}
registerProcessor("onset", Onset);
"""

PAGE_HTML = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>av probe</title>
<style>body{margin:0;background:#000} video{width:64px;height:36px}</style></head>
<body>
<script type="module">
import { Room, RoomEvent, Track, VideoQuality } from "/livekit-client.esm.mjs";
import { PlayoutBalance } from "/lip_sync.js";

const ROLE = "greenroom.role";
const crop = document.createElement("canvas");
crop.width = crop.height = 16;
const g = crop.getContext("2d", { willReadFrequently: true });
const fresh = () => ({ flashes: [], beeps: [], pulls: [], frames: 0, lumaMax: 0, audio: null });
const B = (window.bench = {
  cfg: null, room: null, ctx: null, tracks: {}, streams: {}, errors: [], pullClock: null,
  ev: { comp: fresh(), raw: fresh() },
  reset() { this.ev = { comp: fresh(), raw: fresh() }; },
});

function sourceOf(p) {
  if (p.attributes?.[ROLE] === "compositor") return "comp";
  return p.identity === B.cfg.avatar ? "raw" : null;
}

function consider(pub, p) {
  const s = sourceOf(p);
  if (!s) return;
  if (s === "comp" && pub.kind === Track.Kind.Video && pub.trackName !== B.cfg.compTrack) return;
  if (!pub.isSubscribed) pub.setSubscribed(true);
  if (pub.kind === Track.Kind.Video) pub.setVideoQuality(VideoQuality.HIGH);
}

// context time -> performance.now() ms, when the sample would leave the output
function heard(t) {
  const o = B.ctx.getOutputTimestamp();
  return o.performanceTime > 0 ? o.performanceTime + (t - o.contextTime) * 1000 : null;
}
// context time -> performance.now() ms, when the worklet rendered it (no output latency)
function tapped(t) {
  return performance.now() + (t - B.ctx.currentTime) * 1000;
}

function onVideo(track, s) {
  const v = document.createElement("video");
  v.muted = true; v.autoplay = true; v.playsInline = true;
  document.body.appendChild(v);
  // as Greenroom's viewer page does: its receiver holds the picture for the room's delay,
  // and longer while this browser holds the voice longer than a quiet one (the viewer's
  // own lib/lip_sync.ts, updated every second from the composited voice's receiver)
  if (s === "comp" && B.cfg.playoutHintMs > 0) {
    const balance = (B.balance = new PlayoutBalance(track, B.cfg.playoutHintMs));
    B.videoDelays = [];
    if (B.cfg.balance) {
      setInterval(async () => {
        const voice = B.tracks.comp_audio;
        if (!voice) return;
        balance.update(await voice.getRTCStatsReport());
        B.videoDelays.push(balance.delayMs);
      }, 1000);
    }
  }
  track.attach(v);
  v.play().catch((e) => B.errors.push("video play: " + e));
  let bright = false;
  const e0 = () => B.ev[s];
  // mean of a 16x16 luma crop at the centre: the Y plane through WebCodecs (no RGB
  // conversion of the whole frame), else a canvas draw
  const luma = async (w, h) => {
    let f = null;
    try {
      f = new VideoFrame(v);
      if (["I420", "I420A", "NV12", "I422", "I444"].includes(f.format)) {
        const rect = { x: (w / 2 - 8) & ~1, y: (h / 2 - 8) & ~1, width: 16, height: 16 };
        const buf = new Uint8Array(f.allocationSize({ rect }));
        const layout = await f.copyTo(buf, { rect });
        let sum = 0;
        for (let r = 0; r < 16; r++)
          for (let c = 0; c < 16; c++) sum += buf[layout[0].offset + r * layout[0].stride + c];
        return sum / 256;
      }
    } catch (err) {
      B.errors.push("VideoFrame: " + err);
    } finally {
      f?.close();
    }
    g.drawImage(v, w / 2 - 8, h / 2 - 8, 16, 16, 0, 0, 16, 16);
    const d = g.getImageData(0, 0, 16, 16).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    return sum / 256;
  };
  const cb = async (now, m) => {
    v.requestVideoFrameCallback(cb);
    const w = v.videoWidth, h = v.videoHeight;
    if (!w || !h) return;
    const y = await luma(w, h);
    const e = e0();
    e.frames++;
    if (y > e.lumaMax) e.lumaMax = y;
    const b = y > 200;
    if (b && !bright) {
      e.flashes.push({ shown: m.expectedDisplayTime, presented: m.presentationTime, cb: now,
                       received: m.receiveTime ?? null, rtp: m.rtpTimestamp ?? null,
                       n: m.presentedFrames });
    }
    bright = b;
  };
  v.requestVideoFrameCallback(cb);
}

function onAudio(track, s) {
  const el = track.attach();  // a muted element keeps Chromium pulling the remote track
  el.muted = true;
  document.body.appendChild(el);
  el.play().catch((e) => B.errors.push("audio play: " + e));
  const ctx = B.ctx;
  const src = ctx.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
  const w = new AudioWorkletNode(ctx, "onset", {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { threshold: B.cfg.threshold },
  });
  let head = src;
  if (B.cfg.delayMs > 0) {
    const d = ctx.createDelay(1.0);
    d.delayTime.value = B.cfg.delayMs / 1000;
    src.connect(d);
    head = d;
  }
  head.connect(w);
  w.connect(B.sink);
  w.port.onmessage = (m) => {
    if (m.data.t === undefined) { B.ev[s].audio = m.data; return; }
    B.ev[s].beeps.push({ heard: heard(m.data.t), tap: tapped(m.data.t), ctxTime: m.data.t });
  };
  if (typeof MediaStreamTrackProcessor === "function") pulled(track.mediaStreamTrack, s);
}

// Second tap, no WebAudio: the chunks a MediaStreamTrackProcessor gets, as NetEq hands them
// out (the <audio> element's renderer pulls them); AudioData.timestamp is that moment on
// the TimeTicks clock, mapped to performance.now() by the smallest (arrival - timestamp).
async function pulled(track, s) {
  const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
  let quiet = 1e9, buf = null;
  for (;;) {
    const { value: a, done } = await reader.read();
    if (done) return;
    const arrival = performance.now();
    const ts = a.timestamp / 1000;
    const ahead = arrival - ts;
    if (B.pullClock === null || ahead < B.pullClock) B.pullClock = ahead;
    const n = a.numberOfFrames, sr = a.sampleRate;
    if (!buf || buf.length < n) buf = new Float32Array(n);
    a.copyTo(buf, { planeIndex: 0, format: "f32-planar" });
    a.close();
    for (let i = 0; i < n; i++) {
      if (Math.abs(buf[i]) > B.cfg.threshold) {
        if (quiet >= sr * 0.03) B.ev[s].pulls.push({ ts: ts + (i / sr) * 1000, arrival });
        quiet = 0;
      } else quiet++;
    }
  }
}

B.start = async (cfg) => {
  B.cfg = cfg;
  B.ctx = new AudioContext({ latencyHint: "interactive", sampleRate: 48000 });
  await B.ctx.audioWorklet.addModule("/worklet.js");
  await B.ctx.resume();
  B.sink = B.ctx.createGain();  // the worklets are pulled through a silent gain
  B.sink.gain.value = 0;
  B.sink.connect(B.ctx.destination);
  const room = (B.room = new Room({ adaptiveStream: false, dynacast: false }));
  room.on(RoomEvent.TrackPublished, consider);
  room.on(RoomEvent.ParticipantAttributesChanged, (_c, p) => {
    for (const pub of p.trackPublications.values()) consider(pub, p);
  });
  room.on(RoomEvent.TrackSubscribed, (track, pub, p) => {
    const s = sourceOf(p);
    if (!s) return;
    const kind = track.kind === Track.Kind.Video ? "video" : "audio";
    B.tracks[s + "_" + kind] = track;
    B.streams[s + "_" + kind] = track.mediaStream?.id ?? null;
    if (kind === "video") onVideo(track, s); else onAudio(track, s);
  });
  await room.connect(cfg.url, cfg.token, { autoSubscribe: false });
  for (const p of room.remoteParticipants.values())
    for (const pub of p.trackPublications.values()) consider(pub, p);
};

B.state = () => ({
  tracks: Object.keys(B.tracks),
  comp: { frames: B.ev.comp.frames, audio: B.ev.comp.audio },
  raw: { frames: B.ev.raw.frames, audio: B.ev.raw.audio },
  ctx: B.ctx ? B.ctx.state : null,
});

// cumulative receiver counters, to take differences over the measured seconds
B.stats = async () => {
  const out = {};
  for (const [name, track] of Object.entries(B.tracks)) {
    if (!track.receiver) continue;
    const rep = await track.receiver.getStats();
    rep.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      out[name] = {
        jb: r.jitterBufferDelay ?? 0, jbTarget: r.jitterBufferTargetDelay ?? 0,
        jbMin: r.jitterBufferMinimumDelay ?? 0, emitted: r.jitterBufferEmittedCount ?? 0,
        framesDecoded: r.framesDecoded ?? null, framesDropped: r.framesDropped ?? null,
        frameWidth: r.frameWidth ?? null, concealed: r.concealedSamples ?? null,
        samples: r.totalSamplesReceived ?? null,
      };
    });
  }
  return out;
};

B.collect = () => ({
  ev: B.ev, streams: B.streams, errors: B.errors, pullClock: B.pullClock,
  ctx: { sampleRate: B.ctx.sampleRate, baseLatency: B.ctx.baseLatency,
         outputLatency: B.ctx.outputLatency, out: B.ctx.getOutputTimestamp(),
         currentTime: B.ctx.currentTime, now: performance.now() },
});
window.benchLoaded = true;
</script>
</body></html>
"""


def serve_page() -> tuple[ThreadingHTTPServer, str]:
    """The page, its worklet and livekit-client on 127.0.0.1 (a thread); returns (server, url)."""
    files = {
        "/": (PAGE_HTML.encode(), "text/html"),
        "/worklet.js": (WORKLET_JS.encode(), "text/javascript"),
        "/livekit-client.esm.mjs": (LIVEKIT_CLIENT.read_bytes(), "text/javascript"),
        "/lip_sync.js": (LIP_SYNC_JS.read_bytes(), "text/javascript"),
        "/favicon.ico": (b"", "image/x-icon"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = files.get(self.path.split("?")[0])
            if found is None:
                self.send_error(404)
                return
            body, ctype = found
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


# ----------------------------------------------------------------- child: the avatar
async def run_avatar(args: argparse.Namespace) -> None:
    """The probe avatar (optionally beeping ``--beep-shift-ms`` after its flash) until stdin closes."""

    from greenroom.compositor.synthetic import SKIN, DiscScene, SyntheticAvatar

    shift = args.beep_shift_ms / 1000
    rendered: dict[tuple[int, int, int], bytes] = {}

    class StillScene(DiscScene):
        """DiscScene(motion=False) rendered once per colour: the disc never moves, and the
        2 cores are better spent on the compositor and the browser than on re-rendering it."""

        def render_i420(self, t: float, color: tuple[int, int, int] = SKIN) -> bytes:
            if color not in rendered:
                rendered[color] = super().render_i420(t, color)
            return rendered[color]

    avatar = SyntheticAvatar(scene=StillScene(motion=False), beep_shift=shift)
    await avatar.start(args.url, args.key, args.secret, args.room, AVATAR_IDENTITY)
    print("READY", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)  # "WINDOW <t0> <t1>" (wall s), or EOF
    sender: dict[str, Any] = {}
    if line.startswith("WINDOW"):
        t0, t1 = (float(x) * 1e6 for x in line.split()[1:3])
        # the avatar sends ~0.1-0.5 s before the viewer shows: take its events a bit earlier
        flashes = [f / 1000 for f in avatar.flash_times_us if t0 - 6e5 <= f <= t1 - 1e5]
        offs = _match(flashes, [b / 1000 for b in avatar.beep_times_us])
        sender = {"flashes": len(flashes), **_summary(offs)}
    print("SENDER " + json.dumps(sender), flush=True)
    await avatar.aclose()


# ----------------------------------------------------------------- parent
def _offsets(
    flashes: list[float], beeps: list[float], sign: int = 1, centre: float = 0.0
) -> list[float]:
    """flash - nearest beep (ms) per flash with a beep within MATCH_S of ``flash - centre``;
    positive: audio first. ``sign=-1``: beep - flash instead."""
    out = []
    for fl in flashes:
        near = [b for b in beeps if abs(fl - b - centre) < MATCH_S * 1000]
        if near:
            out.append(round(sign * (fl - min(near, key=lambda b: abs(fl - b - centre))), 1))
    return out


def _match(flashes: list[float], beeps: list[float]) -> list[float]:
    """Offsets matched around their circular mean (period 1 s), so that a run whose offsets sit
    near +-500 ms does not split into both ends."""
    first = _offsets(flashes, beeps)
    if not first:
        return first
    turn = np.angle(np.mean(np.exp(2j * np.pi * np.asarray(first) / 1000)))
    return _offsets(flashes, beeps, centre=float(turn) * 1000 / (2 * np.pi))


def _summary(offs: list[float]) -> dict[str, Any]:
    return {
        "matched": len(offs),
        "median_ms": round(statistics.median(offs), 1) if offs else None,
        "range_ms": [min(offs), max(offs)] if offs else None,
    }


def _receiver_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Mean jitter-buffer delay / target / minimum (ms) per track over the measured seconds."""
    out: dict[str, Any] = {}
    for name, a in after.items():
        b = before.get(name)
        if not b:
            continue
        n = a["emitted"] - b["emitted"]
        if n <= 0:
            continue
        row = {
            key: round((a[field] - b[field]) / n * 1000, 1)
            for key, field in (("jb_ms", "jb"), ("target_ms", "jbTarget"), ("min_ms", "jbMin"))
        }
        if a["framesDropped"] is not None:
            row["frames_decoded"] = a["framesDecoded"] - b["framesDecoded"]
            row["frames_dropped"] = a["framesDropped"] - b["framesDropped"]
            row["width"] = a["frameWidth"]
        if a["concealed"] is not None and a["samples"]:
            row["concealed_pct"] = round(
                100 * (a["concealed"] - b["concealed"]) / max(a["samples"] - b["samples"], 1), 2
            )
        out[name] = row
    return out


async def _inbound_totals(room: Any) -> dict[str, tuple[float, float, int]]:
    """The compositor's receivers of the avatar's tracks, by kind: jitter-buffer delay and
    target delay summed over what each emitted (s), and how many it emitted (cumulative)."""
    from livekit import rtc

    from pipeline import inbound_rtp

    totals: dict[str, tuple[float, float, int]] = {}
    for name, kind in (("video", rtc.TrackKind.KIND_VIDEO), ("audio", rtc.TrackKind.KIND_AUDIO)):
        rtp = await inbound_rtp(room, kind)
        if rtp is not None:
            i = rtp.inbound
            totals[name] = (
                i.jitter_buffer_delay,
                i.jitter_buffer_target_delay,
                i.jitter_buffer_emitted_count,
            )
    return totals


def _window_ms(
    t0: dict[str, tuple[float, float, int]], t1: dict[str, tuple[float, float, int]]
) -> dict[str, dict[str, float]]:
    out = {}
    for kind, (d1, g1, n1) in t1.items():
        d0, g0, n0 = t0.get(kind, (0.0, 0.0, 0))
        if n1 > n0:
            n = n1 - n0
            out[kind] = {
                "jb_ms": round(1000 * (d1 - d0) / n, 1),
                "target_ms": round(1000 * (g1 - g0) / n, 1),
            }
    return out


def _stop_avatar(child: subprocess.Popen[str], window: str) -> dict[str, Any]:
    """Hand the child the measured window, stop it, and return its own flash-beep offsets."""
    sender: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(window)
        child.stdin.close()
        for line in child.stdout:
            if line.startswith("SENDER "):
                sender = json.loads(line[7:])
                break
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
    return sender


async def _wait_page(page: Any, timeout: float) -> dict[str, Any]:
    """Until the page has all four tracks, frames on both videos and audio in both worklets."""
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = await page.evaluate("() => window.bench.state()")
        if len(st["tracks"]) == 4 and all(
            st[s]["frames"] > 0 and st[s]["audio"] and st[s]["audio"]["fed"] > 0
            for s in ("comp", "raw")
        ):
            return st
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the page did not get every track in {timeout:.0f} s: {st}")


async def measure(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run; returns (the result, every flash and beep the page timed)."""
    from playwright.async_api import async_playwright

    from greenroom.compositor import TRACK_NAME, Compositor, CompositorOptions
    from greenroom.livekit_server import LiveKitServer, free_port
    from greenroom.tokens import viewer_token

    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.chromium import CHROMIUM_ARGS  # the flags every browser test launches with
    from pipeline import _Target, server_argv

    server = LiveKitServer.start(port=free_port())
    room = f"benchavb-{int(time.time())}"
    # the room, created before anyone joins, as the API creates a session's room
    from livekit import api

    from greenroom.config import VIDEO_PLAYOUT_DELAY_MAX_MS

    async with api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lk:
        await lk.room.create_room(
            api.CreateRoomRequest(
                name=room,
                sync_streams=args.sync_streams,
                min_playout_delay=args.min_playout_delay,
                max_playout_delay=VIDEO_PLAYOUT_DELAY_MAX_MS if args.min_playout_delay else 0,
            )
        )
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "avatar",
            *server_argv(server),
            "--room",
            room,
            "--beep-shift-ms",
            str(args.beep_shift_ms),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    httpd, page_url = serve_page()
    comp = None
    log: list[str] = []
    window = ""
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        if not line.startswith("READY"):
            raise RuntimeError(f"avatar child: {line!r}")
        target = _Target(server.url, server.api_key, server.api_secret, room)
        comp = await Compositor.start(
            target,
            AVATAR_IDENTITY,
            BACKGROUND,
            CompositorOptions(stats_interval=0, lip_sync_hold=args.lip_sync_hold),
        )
        await comp.wait_first_frame(60)
        token = viewer_token(server.api_key, server.api_secret, room=room, identity="av-browser")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
            )
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            page.on("console", lambda m: log.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
            await page.goto(page_url)
            await page.wait_for_function("() => window.benchLoaded === true", timeout=30_000)
            cfg = {
                "url": server.url,
                "token": token,
                "avatar": AVATAR_IDENTITY,
                "compTrack": TRACK_NAME,
                "threshold": 0.12,
                "delayMs": args.page_audio_delay_ms,
                "playoutHintMs": 0 if args.no_viewer_hint else args.min_playout_delay,
                "balance": not args.no_viewer_balance,
            }
            await page.evaluate("cfg => window.bench.start(cfg)", cfg)
            await _wait_page(page, 60)
            await asyncio.sleep(WARMUP_S)
            await page.evaluate("() => window.bench.reset()")
            stats0 = await page.evaluate("() => window.bench.stats()")
            comp_in0 = await _inbound_totals(comp.room)
            load0 = os.getloadavg()[0]
            window = f"WINDOW {time.time()} "
            held = []  # the compositor's hold for the voice, sampled over the window
            for _ in range(int(args.seconds / 0.5)):
                await asyncio.sleep(0.5)
                held.append(comp.metrics()["voice_lag_ms"])
            window += f"{time.time()}\n"
            stats1 = await page.evaluate("() => window.bench.stats()")
            comp_in = _window_ms(comp_in0, await _inbound_totals(comp.room))
            got = await page.evaluate("() => window.bench.collect()")
            delays = await page.evaluate("() => window.bench.videoDelays ?? []")
            await browser.close()
        m = comp.metrics()
    finally:
        if comp is not None:
            await comp.aclose()
        httpd.shutdown()
        sender = await asyncio.to_thread(_stop_avatar, child, window)
        server.stop()

    ctx = got["ctx"]
    result: dict[str, Any] = {
        "seconds": args.seconds,
        "page_audio_delay_ms": args.page_audio_delay_ms,
        "beep_shift_ms": args.beep_shift_ms,
        "sync_streams": args.sync_streams,
        "min_playout_delay": args.min_playout_delay,
        "lip_sync_hold": args.lip_sync_hold,
        "viewer_hint": not args.no_viewer_hint,
        "viewer_balance": not args.no_viewer_balance,
        # the page's video delay (ms) each second of the window: the room's, raised while
        # the browser held the voice longer than a quiet one (lib/lip_sync.ts)
        "viewer_video_delay_ms": delays[-int(args.seconds) :],
        "load_1m": round(load0, 2),
    }
    # the primary figure: shown (expectedDisplayTime) - heard (getOutputTimestamp mapping);
    # the bound without the graph's output latency: presented - tapped
    for s in ("comp", "raw"):
        ev = got["ev"][s]
        heard_ok = all(b["heard"] is not None for b in ev["beeps"])
        beeps = [b["heard"] if heard_ok else b["tap"] for b in ev["beeps"]]
        offs = _match([f["shown"] for f in ev["flashes"]], beeps)
        tap = _match([f["presented"] for f in ev["flashes"]], [b["tap"] for b in ev["beeps"]])
        clock = got["pullClock"] or 0.0
        pull = _match([f["shown"] for f in ev["flashes"]], [p["ts"] + clock for p in ev["pulls"]])
        result[s] = {
            "flashes": len(ev["flashes"]),
            "beeps": len(ev["beeps"]),
            **_summary(offs),
            "offsets_ms": offs,
            "audio_clock": "getOutputTimestamp" if heard_ok else "currentTime",
            "audio_tap_median_ms": _summary(tap)["median_ms"],
            # the second tap (MediaStreamTrackProcessor): NetEq's hand-out, no WebAudio
            "pulled": {"beeps": len(ev["pulls"]), **_summary(pull), "offsets_ms": pull},
            # the same beeps through both taps: WebAudio heard - handed out (the graph's path)
            "graph_ms": _summary(_offsets([p["ts"] + clock for p in ev["pulls"]], beeps, sign=-1))[
                "median_ms"
            ],
            "frames": ev["frames"],
            "luma_max": round(ev["lumaMax"], 1),
            "audio_heartbeat": ev["audio"],
        }
    result["audio_context"] = {
        "base_latency_ms": round(ctx["baseLatency"] * 1000, 1),
        "output_latency_ms": round(ctx["outputLatency"] * 1000, 1),
        # how far the output clock lags the render clock, as the page saw it at the end
        "render_ahead_of_output_ms": round(
            (ctx["currentTime"] - ctx["out"]["contextTime"]) * 1000, 1
        ),
    }
    # the anchor at the source: flash capture - beep handed to the AudioSource, at the avatar
    result["sender"] = sender
    result["browser_adds_ms"] = [
        round(result[s]["median_ms"] - sender["median_ms"], 1)
        if result[s]["median_ms"] is not None and sender.get("median_ms") is not None
        else None
        for s in ("comp", "raw")
    ]
    result["receivers"] = _receiver_deltas(stats0, stats1)
    result["streams"] = got["streams"]
    result["compositor_audio_offset_ms"] = m.get("audio_offset_ms")
    result["compositor_receivers"] = comp_in
    result["compositor_voice_lag_ms"] = {
        "mean": round(statistics.fmean(held), 1) if held else None,
        "range": [min(held), max(held)] if held else None,
    }
    errors = got["errors"] + [x for x in log if x.startswith(("error", "pageerror"))]
    if errors:
        result["page_errors"] = errors[:10]
    return result, got["ev"]


def _print_summary(r: dict[str, Any]) -> None:
    print(
        f"A/V offset at a headless Chromium viewer ({r['seconds']:.0f} s, load {r['load_1m']}; "
        "positive = audio before picture; target +-60 ms, LiveKit +45/-125 ms):"
    )
    for s, name in (("comp", "composited"), ("raw", "raw avatar")):
        x = r[s]
        print(
            f"  {name:11s}: median {x['median_ms']} ms, range {x['range_ms']}, "
            f"{x['matched']} matched of {x['flashes']} flashes / {x['beeps']} beeps "
            f"(without output latency: {x['audio_tap_median_ms']} ms; second tap, "
            f"MediaStreamTrackProcessor: median {x['pulled']['median_ms']} ms, range "
            f"{x['pulled']['range_ms']}; WebAudio path {x['graph_ms']} ms)"
        )
    snd = r.get("sender") or {}
    print(
        f"  at the avatar (flash captured - beep queued, same seconds): median "
        f"{snd.get('median_ms')} ms, range {snd.get('range_ms')}; so transport + browser add "
        f"{r.get('browser_adds_ms')} ms (composited, raw)"
    )
    ac = r["audio_context"]
    print(
        f"  audio graph: base {ac['base_latency_ms']} ms + output {ac['output_latency_ms']} ms; "
        f"receivers: {r['receivers']}"
    )
    print(
        f"  the compositor: its audio leaves {r['compositor_audio_offset_ms']} ms after the "
        f"picture; its receivers of the avatar: {r['compositor_receivers']}; it held its "
        f"picture {r.get('compositor_voice_lag_ms')} ms for the voice (lip_sync_hold "
        f"{r.get('lip_sync_hold')} s)"
    )
    same = {
        s: r["streams"].get(f"{s}_video") == r["streams"].get(f"{s}_audio") for s in ("comp", "raw")
    }
    print(f"  video and audio in one stream (lip-sync group): {same}")
    d = r.get("viewer_video_delay_ms") or []
    if d:
        print(
            f"  the page's video delay over the window: {min(d)}-{max(d)} ms, mean "
            f"{sum(d) / len(d):.0f} (balance {'on' if r.get('viewer_balance') else 'off'})"
        )
    if r.get("page_errors"):
        print("  page errors:", r["page_errors"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="role")
    p = sub.add_parser("avatar", allow_abbrev=False)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--beep-shift-ms", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds")
    parser.add_argument(
        "--page-audio-delay-ms",
        type=float,
        default=0.0,
        help="delay the audio in the page (DelayNode) by this much: checks the page's timing",
    )
    parser.add_argument(
        "--beep-shift-ms",
        type=float,
        default=0.0,
        help="the avatar beeps this long after its flash: checks the measurement end to end",
    )
    parser.add_argument(
        "--sync-streams",
        action="store_true",
        help="create the room with sync_streams (one msid per participant's camera + mic)",
    )
    parser.add_argument(
        "--min-playout-delay",
        type=int,
        default=VIDEO_PLAYOUT_DELAY_MS,
        metavar="MS",
        help="the room's min_playout_delay: receivers hold video this long (default: what "
        "the API gives the rooms it creates, %(default)s; 0: none)",
    )
    parser.add_argument(
        "--no-viewer-hint",
        action="store_true",
        help="do not ask the page's receiver of the composited video for the room's delay "
        "(Greenroom's viewer page asks; other pages may not)",
    )
    parser.add_argument(
        "--no-viewer-balance",
        action="store_true",
        help="keep the page's video delay at the room's, however long the browser holds the "
        "voice (Greenroom's viewer page raises it, lib/lip_sync.ts)",
    )
    parser.add_argument(
        "--lip-sync-hold",
        type=float,
        default=CompositorOptions.lip_sync_hold,
        metavar="S",
        help="the compositor's lip_sync_hold: longest wait of a frame for its voice "
        "(default %(default)s; 0: never hold)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", help="also write the result to this file")
    parser.add_argument("--events", help="write every flash and beep the page timed to this file")
    args = parser.parse_args()
    if args.role == "avatar":
        asyncio.run(run_avatar(args))
        return
    result, events = asyncio.run(measure(args))
    print("RESULT " + json.dumps(result), flush=True)
    _print_summary(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.events:
        Path(args.events).write_text(json.dumps(events))


if __name__ == "__main__":
    main()
