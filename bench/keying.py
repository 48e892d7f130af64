"""Keying benchmark: Greenroom vs ffmpeg vs a naive numpy chain, same frames, one thread.

    .venv/bin/python bench/keying.py --frames 60
    .venv/bin/python bench/keying.py --family 24 [--report DIR] [--json FILE]
    .venv/bin/python bench/keying.py --family 24 --seeds 0-4   # held-out seeds, and pooled

``--family N`` scores the keyers on N clips of ``greenroom.keying.family`` (independent
green/blue-screen avatars with exact alpha), clean and after VP8 and H.264 round trips at
live-stream bit rates, against ffmpeg's ``chromakey`` tuned per screen family by a grid
search; see ``family_main``.

Speed: ms per frame for key + despill + composite at 1280x720 and 1920x1080 (median
over the clip after a warm-up pass). Quality: alpha error against the synthetic clip's
exact matte, clean and after an H.264 4:2:0 round trip (CRF 20). Also the segmentation
keyer's ms/frame and MAD. Prints Markdown (``--markdown FILE`` also writes it).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

from _ffmpeg import command_line, ffmpeg_composite_ms
from _naive import naive_alpha, naive_composite
from greenroom.keying import ChromaKeyer, I420Frame
from greenroom.keying.ffmpeg_ref import ffmpeg_alpha
from greenroom.keying.metrics import score_clip
from greenroom.keying.synthetic import SyntheticClip, h264_roundtrip

KEY = (0, 177, 64)
BG = (40, 70, 160)


def _median_ms(fn, items, warm: bool = True) -> tuple[float, float]:
    """(median wall ms, median CPU ms of this thread) per call."""
    if warm:
        for it in items[: min(5, len(items))]:
            fn(it)
    wall, cpu = [], []
    for it in items:
        t, c = time.perf_counter(), time.thread_time()
        fn(it)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    return statistics.median(wall) * 1000.0, statistics.median(cpu) * 1000.0


def _clip(w: int, h: int, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    c = SyntheticClip(w, h)
    frames, alphas = [], []
    for i in range(n):
        f, a = c.frame(i)
        frames.append(f)
        alphas.append(a)
    return frames, alphas


def speed(
    frames: list[np.ndarray],
    decoded,
    label: str,
    ffmpeg: bool,
    naive_n: int,
    key: tuple[int, int, int] = KEY,
) -> dict[str, tuple[float, float]]:
    h, w = frames[0].shape[:2]
    bg = np.empty_like(frames[0])
    bg[:] = BG
    bgi = I420Frame.from_rgb(bg)
    out = I420Frame.empty(w, h)
    res: dict[str, tuple[float, float]] = {}
    clean = [I420Frame.from_rgb(f) for f in frames]
    k = ChromaKeyer(key_color=key)
    res["greenroom_i420"] = _median_ms(lambda f: k.composite_i420(f, bgi, out), clean)
    if decoded is not None:
        k = ChromaKeyer(key_color=key)
        dec = [I420Frame(*p) for p in decoded]
        res["greenroom_i420_h264"] = _median_ms(lambda f: k.composite_i420(f, bgi, out), dec)
    k = ChromaKeyer(key_color=key)
    res["greenroom_rgb"] = _median_ms(lambda f: k.composite(f, bg), frames)
    if naive_n:
        res["naive_numpy"] = _median_ms(
            lambda f: naive_composite(f, bg, key), frames[:naive_n], warm=False
        )
    if ffmpeg:
        res["ffmpeg"] = ffmpeg_composite_ms(frames, bg, key)
    print(
        f"  speed {label}: " + ", ".join(f"{k} {v[0]:.2f}/{v[1]:.2f} ms" for k, v in res.items()),
        file=sys.stderr,
    )
    return res


def quality(frames, gts, decoded) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    k = ChromaKeyer()
    rows["Greenroom, RGB path (4:4:4)"] = score_clip([k.matte(f) for f in frames], gts)
    k = ChromaKeyer()
    rows["Greenroom, I420 path (4:2:0, uncompressed)"] = score_clip(
        [k.matte_i420(I420Frame.from_rgb(f)) for f in frames], gts
    )
    rows["ffmpeg chromakey 0.1/0.05 (yuva420p)"] = score_clip(ffmpeg_alpha(frames, KEY), gts)
    rows["naive numpy (same key, per pixel)"] = score_clip(
        [(naive_alpha(f, KEY) * 255 + 0.5).astype(np.uint8) for f in frames], gts
    )
    k = ChromaKeyer()
    rows["H.264: Greenroom, I420 path"] = score_clip(
        [k.matte_i420(I420Frame(*p)) for p in decoded], gts
    )
    rows["H.264: ffmpeg chromakey"] = score_clip(ffmpeg_alpha(decoded, KEY), gts)
    dec_rgb = [I420Frame(*p).to_rgb() for p in decoded]
    rows["H.264: naive numpy"] = score_clip(
        [(naive_alpha(f, KEY) * 255 + 0.5).astype(np.uint8) for f in dec_rgb], gts
    )
    return rows


def segmentation(frames, gts) -> dict[str, float] | None:
    try:
        from greenroom.keying import SegmentationKeyer

        k = SegmentationKeyer()
    except Exception as exc:
        print(f"  segmentation skipped: {exc}", file=sys.stderr)
        return None
    clean = [I420Frame.from_rgb(f) for f in frames]
    h, w = frames[0].shape[:2]
    bgi = I420Frame.blank(w, h, BG)
    out = I420Frame.empty(w, h)
    ms = _median_ms(lambda f: k.composite_i420(f, bgi, out), clean)
    k.reset()
    r = score_clip([k.matte_i420(f) for f in clean], gts, grad=False)
    return {"ms": ms, "mad": r["mad"], "dtssd": r["dtssd"]}


def person(args) -> None:
    """Segmentation keyer on skimage's astronaut photograph against a face-detector trimap
    (``greenroom.keying.person``); ``--report DIR`` also writes a picture."""
    from greenroom.keying import SegmentationKeyer
    from greenroom.keying.person import PHOTO_CREDIT, agreement, astronaut

    photo = astronaut()
    k = SegmentationKeyer()
    frames = [photo.rgb] * 30
    ms = _median_ms(k.matte, frames)
    k.reset()
    for f in frames[:3]:
        alpha = k.matte(f)
    r = agreement(alpha, photo)
    lines = [
        "Command: `.venv/bin/python bench/keying.py --person` (one thread).",
        "",
        f"Photograph: {PHOTO_CREDIT}; 16:9 crop around the face, scaled to 1280x720.",
        "",
        "| segmentation keyer on a real person | value |",
        "|---|---|",
        f"| sure-person pixels kept (alpha >= 0.5) | {r['fg_kept']:.1%} (mean alpha {r['fg_mean_alpha']:.3f}) |",
        f"| sure-background pixels dropped (alpha < 0.5) | {r['bg_dropped']:.1%} (mean alpha {r['bg_mean_alpha']:.4f}) |",
        f"| share of the frame scored (person / background) | {r['fg_share']:.1%} / {r['bg_share']:.1%} |",
        f"| matte ms/frame (wall / CPU) | {ms[0]:.2f} / {ms[1]:.2f} |",
    ]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.report:
        from PIL import Image

        args.report.mkdir(parents=True, exist_ok=True)
        tri = np.zeros_like(photo.rgb)
        tri[photo.sure_fg] = (255, 255, 255)
        tri[photo.sure_bg] = (90, 90, 90)
        a = alpha.astype(np.float32)[..., None] / 255.0
        comp = (a * photo.rgb + (1 - a) * np.array([40, 200, 90])).astype(np.uint8)
        top = np.concatenate([photo.rgb, tri], 1)
        bottom = np.concatenate([np.repeat(alpha[..., None], 3, 2), comp], 1)
        sheet = Image.fromarray(np.concatenate([top, bottom], 0))
        sheet.resize((sheet.width // 2, sheet.height // 2)).save(
            args.report / "keying-person.png", optimize=True
        )


def render(args, sp: dict[str, dict[str, float]], q, seg) -> str:
    lines = []
    cpu = platform.processor() or platform.machine()
    lines.append(
        f"Command: `.venv/bin/python bench/keying.py --frames {args.frames}` "
        f"(synthetic clip, {args.frames} frames; numba {numba.__version__}, numpy {np.__version__}, {cpu}, one thread)."
    )
    lines.append("")
    lines.append(
        "**Speed**, key + despill + composite, ms/frame, one thread: median wall time / median CPU "
        "time of the working thread (ffmpeg: its process CPU time). CPU time is the fairer figure "
        "on a shared, busy machine."
    )
    lines.append("")
    sizes = list(sp)
    lines.append("| pipeline | " + " | ".join(f"{s} wall / CPU" for s in sizes) + " |")
    lines.append("|---" * (len(sizes) + 1) + "|")
    names = [
        ("greenroom_i420", "Greenroom, I420 in/out (clean synthetic)"),
        ("greenroom_i420_h264", "Greenroom, I420 in/out (H.264-decoded frames)"),
        ("greenroom_rgb", "Greenroom, RGB in/out"),
        ("ffmpeg", "ffmpeg chromakey+despill+overlay, `-threads 1`"),
        ("naive_numpy", "naive numpy chain"),
    ]
    for key, label in names:
        if all(key not in sp[s] for s in sizes):
            continue
        cells = [
            f"{sp[s][key][0]:.2f} / {sp[s][key][1]:.2f}" if key in sp[s] else "–" for s in sizes
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratio = [
        f"{sp[s]['ffmpeg'][0] / sp[s]['greenroom_i420'][0]:.1f}x / {sp[s]['ffmpeg'][1] / sp[s]['greenroom_i420'][1]:.1f}x"
        if "ffmpeg" in sp[s]
        else "–"
        for s in sizes
    ]
    lines.append("| ffmpeg / Greenroom I420 | " + " | ".join(ratio) + " |")
    lines.append("")
    if q:
        lines.append(f"**Alpha quality** at 1280x720 over {args.frames} frames (lower is better):")
        lines.append("")
        lines.append("| keyer | MAD e-3 | MSE e-3 | SAD | edge-band MAD e-3 | Grad | dtSSD e-2 |")
        lines.append("|---|---|---|---|---|---|---|")
        for name, r in q.items():
            lines.append(
                f"| {name} | {r['mad'] * 1e3:.3f} | {r['mse'] * 1e3:.3f} | {r['sad']:.2f} | "
                f"{r['edge_mad'] * 1e3:.1f} | {r.get('grad', float('nan')):.2f} | {r['dtssd'] * 1e2:.3f} |"
            )
        lines.append("")
    if seg:
        lines.append(
            f"**Segmentation** (MediaPipe selfie landscape + guided upsampling, I420 path, 1280x720): "
            f"{seg['ms'][0]:.2f} ms/frame wall, {seg['ms'][1]:.2f} ms CPU, MAD {seg['mad'] * 1e3:.2f}e-3, dtSSD {seg['dtssd'] * 1e2:.2f}e-2."
        )
        lines.append("")
    lines.append("ffmpeg command timed (1080p likewise):")
    lines.append("")
    lines.append("```")
    lines.append(command_line(KEY, 1280, 720))
    lines.append("```")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=60, help="frames in the clip (default 60)")
    ap.add_argument("--no-1080", action="store_true", help="skip the 1920x1080 speed run")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--no-ffmpeg", action="store_true")
    ap.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    ap.add_argument("--family", type=int, metavar="N", help="score on N family clips instead")
    ap.add_argument("--seed", type=int, default=0, help="family seed (default 0)")
    ap.add_argument(
        "--seeds",
        default="",
        help="family: score several seeds (0-4 or 0,2,5), each as --seed would, and all pooled "
        "(no sheets or speed runs)",
    )
    ap.add_argument("--size", default="640x360", help="family clip size (default 640x360)")
    ap.add_argument("--clip-frames", type=int, default=6, help="frames per family clip")
    ap.add_argument("--codecs", default="vp8,h264", help="round trips to score (default vp8,h264)")
    ap.add_argument(
        "--lead-in",
        choices=("past", "repeat"),
        default="past",
        help="what the codec encodes before each family clip: the clip's own past frames, as "
        "in a running stream (default), or the clip itself (the clip then starts after a cut)",
    )
    ap.add_argument(
        "--kbps", type=float, default=2000.0, help="codec rate at 720p (scaled by area)"
    )
    ap.add_argument("--report", type=Path, help="family: write PNG sheets of the worst clips here")
    ap.add_argument("--worst", type=int, default=3, help="family: sheets for this many clips")
    ap.add_argument("--json", type=Path, help="family: write per-clip figures as JSON")
    ap.add_argument("--no-speed", action="store_true", help="family: skip the speed runs")
    ap.add_argument(
        "--only", default="", help="family: score only clips whose names start so (c05,c14)"
    )
    ap.add_argument(
        "--person", action="store_true", help="segmentation keyer on a real photograph instead"
    )
    args = ap.parse_args()
    numba.set_num_threads(1)
    if args.person:
        person(args)
        return
    if args.family:
        from _family import family_main

        family_main(args, speed)
        return
    print(f"rendering {args.frames} frames at 1280x720 ...", file=sys.stderr)
    frames, gts = _clip(1280, 720, args.frames)
    decoded = h264_roundtrip(frames)
    sp = {"1280x720": speed(frames, decoded, "720p", not args.no_ffmpeg, min(10, args.frames))}
    if not args.no_1080:
        print("rendering 1920x1080 ...", file=sys.stderr)
        f1080, _ = _clip(1920, 1080, max(10, args.frames // 2))
        sp["1920x1080"] = speed(f1080, None, "1080p", not args.no_ffmpeg, min(10, args.frames))
        del f1080
    q = None if args.no_quality else quality(frames, gts, decoded)
    seg = segmentation(frames, gts)
    report = render(args, sp, q, seg)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")


if __name__ == "__main__":
    main()
