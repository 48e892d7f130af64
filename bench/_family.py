"""``bench/keying.py --family N``: keyers scored on a family of independent clips.

For each clip of ``greenroom.keying.family`` and each condition (clean; VP8 and H.264 round
trips at live-stream bit rates, 4:2:0), three keyers see the same frames:

- Greenroom's RGB path (``ChromaKeyer.matte``; after a codec, on the decoded frame as RGB),
- Greenroom's I420 live path (``ChromaKeyer.matte_i420``),
- ffmpeg ``chromakey`` on the same I420 planes, its similarity/blend chosen per screen
  family and condition by a grid search (``ffmpeg_ref.GRID``) minimising the family's mean
  MAD: the best a user could tune it to, with the truth in hand. The search runs on a
  re-implementation of its maths (``ffmpeg_ref.chromakey_diff``); the figures reported come
  from the ffmpeg binary at the chosen setting.

Both keyers are told the clip's screen colour. Metrics (``keying.metrics``): MAD, edge-band
MAD and dtSSD per clip; mean and worst over clips; ratios to ffmpeg.
"""

from __future__ import annotations

import functools
import json
import platform
import sys
import time
from collections import defaultdict
from dataclasses import replace

import numba
import numpy as np

from greenroom.keying import ChromaKeyer, I420Frame
from greenroom.keying.codec_roundtrip import roundtrip
from greenroom.keying.family import ClipSpec, family_specs, render_clip
from greenroom.keying.ffmpeg_ref import (
    GRID,
    chromakey_alpha,
    chromakey_diff,
    despill_green,
    ffmpeg_alpha,
)
from greenroom.keying.metrics import edge_band, score_clip

KEYERS = ("ours_rgb", "ours_i420", "ffmpeg")
LABELS = {
    "ours_rgb": "Greenroom, RGB path",
    "ours_i420": "Greenroom, I420 live path",
    "ffmpeg": "ffmpeg chromakey, best-tuned",
}
METRICS = ("mad", "edge_mad", "dtssd")
#: ``comp``: mean |RGB error| (levels) of the composite over a contrasting colour, against
#: the true composite of the spill-free foreground, on the figure and 3 px around it.
REPORTED = (*METRICS, "comp")
SCALE = {"mad": 1e3, "edge_mad": 1e3, "dtssd": 1e2, "comp": 1.0}
UNIT = {
    "mad": "MAD e-3",
    "edge_mad": "edge MAD e-3",
    "dtssd": "dtSSD e-2",
    "comp": "composite error (levels)",
}


def _inputs(
    clip, cond: str, kbps: float, lead_in: str = "past"
) -> tuple[list[np.ndarray], list[I420Frame]]:
    """(RGB frames, I420 frames) a keyer sees under ``cond``.

    ``lead_in`` (``--lead-in``) is what the codec encodes first: "past", the clip's own
    preceding 1.5 s, so the clip is keyed as a settled running stream; "repeat", the clip
    itself, so the measured frames are the codec's frames 6-11 after its key frame (with
    6-frame clips) and start after a cut from the clip's last frame (the protocol until
    2026-12-08, kept to reproduce earlier figures)."""
    if cond == "clean":
        return clip.frames, [I420Frame.from_rgb(f) for f in clip.frames]
    lead = None if lead_in == "repeat" else _past(clip.spec)
    planes = roundtrip(clip.frames, cond, kbps_720p=kbps, lead_in=lead)
    i420 = [I420Frame(*p) for p in planes]
    return [f.to_rgb() for f in i420], i420


#: Frames of a clip's past that a codec encodes before the clip (``--lead-in past``): 1.5 s
#: at 30 fps. After its opening key frame VP8 at 2 Mbit/s-at-720p takes about that long to
#: settle: chroma PSNR 38 dB on the key frame, 35 dB three to six frames on, 44 dB at 20
#: frames, 46.8 dB from about 40 frames (mean of 8 family clips, seed 0).
LEAD_IN_FRAMES = 45


@functools.lru_cache(maxsize=2)
def _past(spec: ClipSpec) -> list[np.ndarray]:
    """The ``LEAD_IN_FRAMES`` frames just before the clip (both codecs of a clip share them)."""
    return render_clip(replace(spec, frames=LEAD_IN_FRAMES), start=-LEAD_IN_FRAMES).frames


def contrast(screen: tuple[int, int, int]) -> tuple[int, int, int]:
    """A background far from the screen: magenta on green, orange on blue."""
    return (200, 40, 170) if int(np.argmax(screen)) == 1 else (235, 140, 20)


def truth_composites(clip) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The true composite over the contrasting colour (spill-free foreground) and the region
    its error is measured on: the figure and 3 px around it."""
    bg = np.asarray(contrast(clip.spec.screen), np.float32)
    comps, regions = [], []
    for a, f in zip(clip.alphas, clip.foregrounds, strict=True):
        comps.append(
            np.clip(a[..., None] * f + (1 - a[..., None]) * bg + 0.5, 0, 255).astype(np.uint8)
        )
        regions.append(edge_band(a) | (a > 0))
    return comps, regions


def comp_error(outs: list[np.ndarray], comps: list[np.ndarray], regions: list[np.ndarray]) -> float:
    """Mean |RGB difference| (8-bit levels) to the true composite over the figure region."""
    return float(
        np.mean(
            [
                np.abs(o.astype(np.int16) - c)[r].mean()
                for o, c, r in zip(outs, comps, regions, strict=True)
            ]
        )
    )


def our_keys(key, rgb: list[np.ndarray], i420: list[I420Frame]):
    """Alphas and composites over the contrasting colour from both of our paths."""
    h, w = rgb[0].shape[:2]
    bg = np.empty((h, w, 3), np.uint8)
    bg[:] = contrast(key)
    k = ChromaKeyer(key_color=key)
    rgb_out = [k.composite_with_alpha(f, bg) for f in rgb]
    k = ChromaKeyer(key_color=key)
    bgi = I420Frame.from_rgb(bg)
    i420_a, i420_c = [], []
    for f in i420:
        a = np.empty((h, w), np.uint8)
        i420_c.append(k.composite_i420(f, bgi, alpha_out=a).to_rgb())
        i420_a.append(a)
    return {
        "ours_rgb": ([a for _, a in rgb_out], [c for c, _ in rgb_out]),
        "ours_i420": (i420_a, i420_c),
    }


def ffmpeg_composite(alpha: np.ndarray, rgb: np.ndarray, screen) -> np.ndarray:
    """ffmpeg's picture: its alpha over the contrasting colour after ``despill`` (computed
    here in RGB with despill's default formula; ffmpeg overlays in 4:2:0)."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    fg = despill_green(rgb, int(np.argmax(screen)) == 2)
    bg = np.asarray(contrast(screen), np.float32)
    return np.clip(a * fg + (1 - a) * bg + 0.5, 0, 255).astype(np.uint8)


def _score(preds, gts, bands) -> dict[str, float]:
    r = score_clip(preds, gts, grad=False, bands=bands)
    return {m: r[m] for m in METRICS}


def _grid_mads(planes, key, gts) -> np.ndarray:
    """Mean MAD of every ``GRID`` setting, from the chromakey re-implementation (fast)."""
    out = np.zeros(len(GRID))
    for p, g in zip(planes, gts, strict=True):
        d = chromakey_diff(p, key)
        for k, (sim, blend) in enumerate(GRID):
            out[k] += np.abs(chromakey_alpha(d, sim, blend) * np.float32(1 / 255) - g).mean()
    return out / len(gts)


def evaluate(specs: list[ClipSpec], conds: list[str], kbps: float, lead_in: str = "past"):
    """Score our keyers and ffmpeg; per[cond][clip][keyer] -> metrics.

    ffmpeg's setting is chosen per condition and screen family by the grid's mean MAD over
    the family's clips (re-implemented maths, fast), then ffmpeg itself runs at that setting.
    Returns (per, best) with best[cond][family] an index into ``GRID``.
    """
    per: dict = defaultdict(dict)
    grid: dict = defaultdict(dict)
    kept = {}
    t0 = time.perf_counter()
    for i, spec in enumerate(specs):
        clip = render_clip(spec)
        bands = [edge_band(g) for g in clip.alphas]
        comps, regions = truth_composites(clip)
        for cond in conds:
            rgb, i420 = _inputs(clip, cond, kbps, lead_in)
            row = {}
            for name, (alphas, outs) in our_keys(spec.screen, rgb, i420).items():
                row[name] = _score(alphas, clip.alphas, bands)
                row[name]["comp"] = comp_error(outs, comps, regions)
            per[cond][spec.name] = row
            planes = [(f.y, f.u, f.v) for f in i420]
            grid[cond][spec.name] = _grid_mads(planes, spec.screen, clip.alphas)
            kept[cond, spec.name] = planes
        kept[spec.name] = (clip.alphas, bands, comps, regions)
        print(
            f"  [{i + 1}/{len(specs)}] {spec.name} ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
        )
    best: dict[str, dict[str, int]] = defaultdict(dict)
    for cond in conds:
        for fam in sorted({s.family for s in specs}):
            names = [s.name for s in specs if s.family == fam]
            best[cond][fam] = int(np.argmin(np.mean([grid[cond][n] for n in names], axis=0)))
    for spec in specs:
        gts, bands, comps, regions = kept[spec.name]
        for cond in conds:
            sim, blend = GRID[best[cond][spec.family]]
            planes = kept[cond, spec.name]
            a = ffmpeg_alpha(planes, spec.screen, sim, blend)
            row = per[cond][spec.name]["ffmpeg"] = _score(a, gts, bands)
            outs = [
                ffmpeg_composite(x, I420Frame(*p).to_rgb(), spec.screen)
                for x, p in zip(a, planes, strict=True)
            ]
            row["comp"] = comp_error(outs, comps, regions)
    print(f"  ffmpeg at the chosen settings ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return per, best


def summary(per) -> dict[str, dict[str, dict[str, float]]]:
    """out[cond][keyer] = {mad_mean, mad_worst, ..., mad_ratio_mean, mad_ratio_worst}."""
    out: dict = {}
    for cond, clips in per.items():
        out[cond] = {}
        for keyer in KEYERS:
            d = {}
            for m in REPORTED:
                v = np.array([clips[c][keyer][m] for c in clips])
                f = np.array([clips[c]["ffmpeg"][m] for c in clips])
                d[f"{m}_mean"] = float(v.mean())
                d[f"{m}_worst"] = float(v.max())
                d[f"{m}_ratio_mean"] = float(v.mean() / f.mean())
                d[f"{m}_ratio_worst"] = float(v.max() / f.max())
                d[f"{m}_ratio_clip_max"] = float((v / f).max())
            out[cond][keyer] = d
    return out


def render_markdown(args, specs, per, summ, best, speeds, elapsed) -> str:
    w, h = specs[0].width, specs[0].height
    cpu = platform.processor() or platform.machine()
    lines = [
        f"Command: `.venv/bin/python bench/keying.py --family {args.family} --seed {args.seed} "
        f"--size {args.size} --clip-frames {args.clip_frames} --lead-in {args.lead_in}"
        + (f" --only {args.only}" if args.only else "")
        + f"` ({len(specs)} clips of "
        f"{args.clip_frames} frames at {w}x{h}; codecs at {args.kbps:.0f} kbit/s for 720p, scaled "
        f"by area; numba {numba.__version__}, numpy {np.__version__}, {cpu}, one thread; "
        f"{elapsed:.0f} s).",
        "",
        "**Alpha error over the family** (mean / worst clip; lower is better). Ratio = ours / "
        "ffmpeg best-tuned on the same frames (mean over mean; worst over worst).",
        "",
    ]
    for cond in summ:
        lines.append(f"*{cond}*:")
        lines.append("")
        lines.append(
            "| keyer | "
            + " | ".join(f"{UNIT[m]} mean / worst" for m in REPORTED)
            + " | MAD ratio mean / worst | dtSSD ratio mean / worst |"
        )
        lines.append("|---" * (len(REPORTED) + 3) + "|")
        for keyer in KEYERS:
            d = summ[cond][keyer]
            cells = [
                f"{d[f'{m}_mean'] * SCALE[m]:.2f} / {d[f'{m}_worst'] * SCALE[m]:.2f}"
                for m in REPORTED
            ]
            if keyer == "ffmpeg":
                cells += ["1", "1"]
            else:
                cells += [
                    f"**{d['mad_ratio_mean']:.2f}x** / {d['mad_ratio_worst']:.2f}x",
                    f"{d['dtssd_ratio_mean']:.2f}x / {d['dtssd_ratio_worst']:.2f}x",
                ]
            lines.append(f"| {LABELS[keyer]} | " + " | ".join(cells) + " |")
        settings = ", ".join(
            f"{fam} {GRID[k][0]}/{GRID[k][1]}" for fam, k in sorted(best[cond].items())
        )
        lines.append("")
        lines.append(f"ffmpeg similarity/blend chosen: {settings}.")
        lines.append("")
    lines.append("**Per clip**, MAD e-3 (ours RGB / ours I420 / ffmpeg):")
    lines.append("")
    conds = list(summ)
    lines.append("| clip | " + " | ".join(conds) + " |")
    lines.append("|---" * (len(conds) + 1) + "|")
    for s in specs:
        cells = []
        for cond in conds:
            r = per[cond][s.name]
            cells.append(" / ".join(f"{r[k]['mad'] * 1e3:.2f}" for k in KEYERS))
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    lines.append("")
    if speeds:
        lines.append(
            "**Speed** on a family clip, key + despill + composite, ms/frame, one thread, "
            "median wall / median CPU (ffmpeg: chromakey + despill + overlay, process CPU):"
        )
        lines.append("")
        sizes = list(speeds)
        lines.append("| path | " + " | ".join(sizes) + " |")
        lines.append("|---" * (len(sizes) + 1) + "|")
        for key, label in (
            ("greenroom_i420", "Greenroom, I420 in/out"),
            ("greenroom_rgb", "Greenroom, RGB in/out"),
            ("ffmpeg", "ffmpeg, `-threads 1`"),
        ):
            cells = [
                f"{speeds[z][key][0]:.2f} / {speeds[z][key][1]:.2f}" if key in speeds[z] else "–"
                for z in sizes
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            seeds += range(int(lo), int(hi or lo) + 1)
        except ValueError:
            msg = f"--seeds takes numbers and ranges like 0-4 or 0,2,5, got {text!r}"
            raise SystemExit(msg) from None
    if not seeds:
        raise SystemExit("--seeds names no seed")
    return seeds


def _specs(args, seed: int) -> list[ClipSpec]:
    w, h = (int(v) for v in args.size.lower().split("x"))
    specs = family_specs(args.family, seed, width=w, height=h, frames=args.clip_frames)
    if args.only:
        prefixes = tuple(p for p in args.only.split(",") if p)
        specs = [s for s in specs if s.name.startswith(prefixes)]
        if not specs:
            raise SystemExit(f"--only {args.only!r} matches no clip of the family")
    return specs


def render_seeds(args, per_seed: dict[int, dict], pooled: dict, clips: int, elapsed: float) -> str:
    """One row per seed and condition for the I420 live path, then the pooled family."""
    lines = [
        f"Command: `.venv/bin/python bench/keying.py --family {args.family} --seeds {args.seeds} "
        f"--size {args.size} --clip-frames {args.clip_frames} --codecs {args.codecs} "
        f"--lead-in {args.lead_in}"
        + (f" --only {args.only}" if args.only else "")
        + f"` ({len(per_seed)} seeds, {clips} clips in all; ffmpeg best-tuned per seed, screen "
        f"family and condition; {elapsed:.0f} s).",
        "",
        "**Greenroom's I420 live path against ffmpeg's best-tuned `chromakey`, per seed** "
        "(ratio of means / ratio of worst clips; lower is better):",
        "",
        "| seed | condition | MAD ratio mean / worst | dtSSD ratio mean / worst "
        "| I420 MAD / RGB MAD (mean) |",
        "|---|---|---|---|---|",
    ]

    def row(label: str, summ: dict) -> None:
        for cond, d in summ.items():
            x, rgb = d["ours_i420"], d["ours_rgb"]
            lines.append(
                f"| {label} | {cond} | {x['mad_ratio_mean']:.3f} / {x['mad_ratio_worst']:.3f} "
                f"| {x['dtssd_ratio_mean']:.3f} / {x['dtssd_ratio_worst']:.3f} "
                f"| {x['mad_mean'] / rgb['mad_mean']:.3f} |"
            )

    for seed, summ in per_seed.items():
        row(str(seed), summ)
    row(f"all {clips} clips", pooled)
    lines.append("")
    return "\n".join(lines)


def seeds_main(args) -> None:
    """``--seeds``: the family of each seed scored as ``--seed`` would, and all pooled
    (no sheets and no speed runs: those are ``--seed``'s)."""
    seeds = parse_seeds(args.seeds)
    conds = ["clean", *[c for c in args.codecs.split(",") if c]]
    t0 = time.perf_counter()
    per_seed: dict[int, dict] = {}
    pooled: dict = defaultdict(dict)
    for seed in seeds:
        specs = _specs(args, seed)
        print(f"seed {seed}: {len(specs)} clips, conditions {conds}", file=sys.stderr)
        per, _best = evaluate(specs, conds, args.kbps, args.lead_in)
        per_seed[seed] = summary(per)
        for cond, clips in per.items():
            for name, r in clips.items():
                pooled[cond][f"s{seed}/{name}"] = r
    clips = len(next(iter(pooled.values()), {}))
    pooled_summary = summary(pooled)
    report = render_seeds(args, per_seed, pooled_summary, clips, time.perf_counter() - t0)
    _emit(args, report, {"per_seed": per_seed, "pooled": pooled_summary})


def _emit(args, report: str, figures: dict) -> None:
    """Print the report; also write it (``--markdown``) and the figures (``--json``)."""
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **figures}, indent=1)
        )


def family_main(args, speed_fn) -> None:
    if args.seeds:
        seeds_main(args)
        return
    specs = _specs(args, args.seed)
    w, h = specs[0].width, specs[0].height
    conds = ["clean", *[c for c in args.codecs.split(",") if c]]
    print(f"family: {len(specs)} clips at {w}x{h}, conditions {conds}", file=sys.stderr)
    t0 = time.perf_counter()
    per, best = evaluate(specs, conds, args.kbps, args.lead_in)
    summ = summary(per)
    elapsed = time.perf_counter() - t0
    speeds = {}
    if not args.no_speed:
        for sw, sh in ((1280, 720), (1920, 1080)):
            spec = family_specs(1, args.seed, width=sw, height=sh, frames=10)[0]
            frames = render_clip(spec).frames
            speeds[f"{sw}x{sh}"] = speed_fn(
                frames, None, f"{sh}p", not args.no_ffmpeg, 0, key=spec.screen
            )
    report = render_markdown(args, specs, per, summ, best, speeds, elapsed)
    settings = {c: {f: GRID[k] for f, k in b.items()} for c, b in best.items()}
    _emit(
        args,
        report,
        {"summary": summ, "per_clip": per, "ffmpeg_settings": settings, "speed_ms": speeds},
    )
    if args.report:
        from _sheets import write_sheets

        write_sheets(args.report, specs, per, best, conds, args.kbps, args.worst, args.lead_in)
