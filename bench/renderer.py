"""Cost of the built-in avatar's renderer per frame, against a naive re-draw-everything anchor.

Set-up (not timed): build the renderer (static layers drawn 4x4 supersampled once) and run
each path once so numba's compiled kernels are loaded.

Timed, in one run:
- ``render_i420(want_alpha=False)``: what ``LocalAvatar`` publishes (flat I420 for LiveKit);
- ``render``: RGB + exact float32 alpha (what keying tests and benchmarks use);
- anchor ``render_naive``: every layer redrawn supersampled with Pillow, then composited and
  noised with numpy, the straightforward way to draw the same picture.

Each frame uses a new time and mouth opening (motion, blinks and mouth shapes all change).
CPU time is the rendering thread's own (``time.thread_time``), so other processes on a busy
machine do not inflate it; wall time is shown too. "% of one core" = CPU ms x fps / 10.

    .venv/bin/python bench/renderer.py                  # 1280x720 at 30 fps
    .venv/bin/python bench/renderer.py --size 1920x1080 --frames 150 --naive-frames 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from greenroom.avatars.local import AvatarRenderer


def _measure(fn: Callable[[float, float], object], frames: int, fps: float) -> tuple[float, float]:
    """(median CPU ms, median wall ms) per frame over ``frames`` calls."""
    cpu, wall = [], []
    for i in range(frames):
        t = i / fps
        mouth = 0.5 + 0.5 * ((i * 7) % 11) / 10 - 0.25
        c0, w0 = time.thread_time(), time.perf_counter()
        fn(t, mouth)
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=300, help="frames per fast path")
    ap.add_argument("--naive-frames", type=int, default=10, help="frames for the anchor")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    t0 = time.perf_counter()
    r = AvatarRenderer(w, h, args.fps)
    build_s = time.perf_counter() - t0
    r.render_i420(0.0, 0.0, want_alpha=False)
    r.render(0.0, 0.0)
    r.render_naive(0.0, 0.0)

    rows = [
        (
            "render_i420, no alpha (published)",
            _measure(lambda t, m: r.render_i420(t, m, want_alpha=False), args.frames, args.fps),
        ),
        ("render, RGB + exact alpha", _measure(lambda t, m: r.render(t, m), args.frames, args.fps)),
        (
            "anchor: naive re-draw (Pillow 4x4 + numpy)",
            _measure(lambda t, m: r.render_naive(t, m), args.naive_frames, args.fps),
        ),
    ]
    anchor_cpu = rows[-1][1][0]
    print(f"renderer {w}x{h} @ {args.fps:g} fps; static layers built in {build_s:.2f} s")
    print("| path | CPU ms/frame | wall ms/frame | % of one core | vs anchor |")
    print("|---|---|---|---|---|")
    for name, (cpu, wall) in rows:
        share = cpu * args.fps / 10
        print(f"| {name} | {cpu:.2f} | {wall:.2f} | {share:.1f}% | {anchor_cpu / cpu:.0f}x |")


if __name__ == "__main__":
    main()
