"""``bench/keying.py --family N --report DIR``: PNG sheets that show where mattes fail.

One sheet per (clip, condition), of the frame where Greenroom does worst: the input the keyers saw, the true alpha, Greenroom's
(I420 live path) and ffmpeg's alpha, their error maps (red: alpha too high, the screen
kept; blue: too low, holes; brightness = size of the error, x2) and each composite over a
contrasting colour. ``*-crop.png`` is the same sheet cut to the worst region at full scale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from greenroom.keying import ChromaKeyer, I420Frame
from greenroom.keying.family import ClipSpec, render_clip
from greenroom.keying.ffmpeg_ref import GRID, despill_green, ffmpeg_alpha

LABEL_H = 16


def _worst(specs, per, conds, n: int) -> list[tuple[ClipSpec, str]]:
    """The ``n`` clips where our I420 path has the highest MAD, each at its worst condition."""
    rows = []
    for s in specs:
        cond = max(conds, key=lambda c: per[c][s.name]["ours_i420"]["mad"])
        rows.append((per[cond][s.name]["ours_i420"]["mad"], s, cond))
    rows.sort(key=lambda r: -r[0])
    return [(s, c) for _, s, c in rows[:n]]


def _gray(a: np.ndarray) -> np.ndarray:
    a8 = a if a.dtype == np.uint8 else np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(a8[..., None], 3, axis=2)


def _error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    e = pred.astype(np.float32) / 255.0 - gt
    out = np.zeros((*gt.shape, 3), np.float32)
    out[..., 0] = np.clip(e, 0, None) * 2.0  # too high: red
    out[..., 2] = np.clip(-e, 0, None) * 2.0  # too low: blue
    out[..., 1] = 0.25 * (out[..., 0] + out[..., 2])
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def _tiles(spec: ClipSpec, cond: str, kbps: float, setting: tuple[float, float], lead_in: str):
    from _family import _inputs, contrast

    clip = render_clip(spec)
    rgb, i420 = _inputs(clip, cond, kbps, lead_in)
    k = ChromaKeyer(key_color=spec.screen)
    bg_rgb = np.empty_like(clip.frames[0])
    bg_rgb[:] = contrast(spec.screen)
    bg = I420Frame.from_rgb(bg_rgb)
    alphas, comps = [], []
    for f in i420:  # the whole stream, as live; the sheet shows our worst frame
        alpha = np.empty((f.height, f.width), np.uint8)
        comps.append(k.composite_i420(f, bg, alpha_out=alpha).to_rgb())
        alphas.append(alpha)
    errs = [np.abs(a / 255.0 - g).mean() for a, g in zip(alphas, clip.alphas, strict=True)]
    n = int(np.argmax(errs))
    ours, comp = alphas[n], comps[n]
    ff = ffmpeg_alpha([(f.y, f.u, f.v) for f in i420], spec.screen, *setting)[n]
    gt = clip.alphas[n]
    a = ff.astype(np.float32)[..., None] / 255.0
    blue = int(np.argmax(spec.screen)) == 2
    ff_comp = np.clip(a * despill_green(rgb[n], blue) + (1 - a) * bg_rgb, 0, 255).astype(np.uint8)
    return (
        [
            ("input (as decoded)", rgb[n]),
            ("true alpha", _gray(gt)),
            ("Greenroom alpha (I420 path)", _gray(ours)),
            (f"ffmpeg alpha ({setting[0]}/{setting[1]})", _gray(ff)),
            ("truth composite", _truth_comp(clip, n, bg_rgb)),
            ("Greenroom error (red high, blue low)", _error(ours, gt)),
            ("ffmpeg error", _error(ff, gt)),
            ("Greenroom composite", comp),
            ("ffmpeg composite (+despill)", ff_comp),
        ],
        np.abs(ours.astype(np.float32) / 255 - gt) + np.abs(ff.astype(np.float32) / 255 - gt),
        n,
    )


def _truth_comp(clip, n: int, bg: np.ndarray) -> np.ndarray:
    a = clip.alphas[n][..., None]
    return np.clip(a * clip.foregrounds[n] + (1 - a) * bg + 0.5, 0, 255).astype(np.uint8)


def _sheet(tiles, title: str, cols: int = 3) -> Image.Image:
    h, w = tiles[0][1].shape[:2]
    rows = -(-len(tiles) // cols)
    img = Image.new("RGB", (cols * w, LABEL_H + rows * (h + LABEL_H)), (24, 24, 24))
    d = ImageDraw.Draw(img)
    d.text((4, 2), title, fill=(255, 255, 255))
    for k, (label, arr) in enumerate(tiles):
        x = (k % cols) * w
        y = LABEL_H + (k // cols) * (h + LABEL_H)
        d.text((x + 4, y + 2), label, fill=(230, 230, 230))
        img.paste(Image.fromarray(arr), (x, y + LABEL_H))
    return img


def _crop_box(err: np.ndarray, cw: int, ch: int) -> tuple[int, int, int, int]:
    """A (cw, ch) window centred on the largest error mass (box-summed)."""
    s = err.cumsum(0).cumsum(1)
    s = np.pad(s, ((1, 0), (1, 0)))
    box = s[ch:, cw:] - s[:-ch, cw:] - s[ch:, :-cw] + s[:-ch, :-cw]
    y, x = np.unravel_index(int(np.argmax(box)), box.shape)
    return int(x), int(y), int(x) + cw, int(y) + ch


def write_sheets(
    out: Path, specs, per, best, conds, kbps: float, n: int, lead_in: str = "past"
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec, cond in _worst(specs, per, conds, n):
        setting = GRID[best[cond][spec.family]]
        tiles, err, frame = _tiles(spec, cond, kbps, setting, lead_in)
        r = per[cond][spec.name]
        title = (
            f"{spec.name}, {cond}: MAD e-3 Greenroom I420 {r['ours_i420']['mad'] * 1e3:.2f}, "
            f"ffmpeg {r['ffmpeg']['mad'] * 1e3:.2f} (clip means); frame {frame}, our worst"
        )
        path = out / f"keying-{spec.name}-{cond}.png"
        _sheet(tiles, title).save(path, optimize=True)
        h, w = err.shape
        x0, y0, x1, y1 = _crop_box(err, w // 2, h // 2)
        crops = [(label, arr[y0:y1, x0:x1]) for label, arr in tiles]
        crop = out / f"keying-{spec.name}-{cond}-crop.png"
        _sheet(crops, title, cols=3).save(crop, optimize=True)
        written += [path, crop]
        print(f"  sheet {path}", file=sys.stderr)
    return written
