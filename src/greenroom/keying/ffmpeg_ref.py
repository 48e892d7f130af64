"""ffmpeg's ``chromakey`` as the baseline keyer: its alpha plane, and a grid search over its
two settings, run by the ffmpeg binary on the same frames Greenroom keys (one thread).

Frames are I420 planes (what the live path sees) or RGB arrays.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from numba import njit

from greenroom.keying.params import format_color

THREADS = ["-threads", "1", "-filter_threads", "1", "-filter_complex_threads", "1"]
#: similarity x blend pairs tried by ``ffmpeg_alpha_grid`` (ffmpeg's default is 0.01 / 0).
GRID = tuple((s, b) for s in (0.03, 0.05, 0.08, 0.11, 0.15, 0.2) for b in (0.02, 0.05, 0.1, 0.16))

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def ffmpeg_color(key: tuple[int, int, int]) -> str:
    """ffmpeg's colour syntax, ``0xRRGGBB``."""
    return "0x" + format_color(key)[1:]


def _input(tmp: Path, frames: list[np.ndarray] | list[Planes]) -> tuple[list[str], int, int]:
    first = frames[0]
    i420 = isinstance(first, tuple)
    h, w = first[0].shape if isinstance(first, tuple) else first.shape[:2]
    src = tmp / "in.raw"
    with open(src, "wb") as f:
        for fr in frames:
            if i420:
                for p in fr:
                    f.write(np.ascontiguousarray(p).tobytes())
            else:
                f.write(np.ascontiguousarray(fr).tobytes())
    pix = "yuv420p" if i420 else "rgb24"
    args = ["-f", "rawvideo", "-pix_fmt", pix, "-s", f"{w}x{h}", "-r", "30", "-i", str(src)]
    return args, w, h


def ffmpeg_alpha_grid(
    frames: list[np.ndarray] | list[Planes],
    key: tuple[int, int, int],
    grid: tuple[tuple[float, float], ...] = GRID,
) -> list[list[np.ndarray]]:
    """chromakey's alpha (``alphaextract``) for every (similarity, blend) in ``grid``, from one
    ffmpeg process: result[k][n] is frame n's (H, W) uint8 alpha under grid[k]."""
    if not frames:
        raise ValueError("frames must not be empty")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        args, w, h = _input(tmp, frames)
        labels = "".join(f"[s{k}]" for k in range(len(grid)))
        chains = [f"[0:v]format=yuva420p,split={len(grid)}{labels}"]
        outs: list[str] = []
        for k, (sim, blend) in enumerate(grid):
            chains.append(f"[s{k}]chromakey={ffmpeg_color(key)}:{sim}:{blend},alphaextract[a{k}]")
            outs += [
                "-map",
                f"[a{k}]",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                str(tmp / f"a{k}.raw"),
            ]
        cmd = ["ffmpeg", "-v", "error", "-y", *THREADS, *args]
        cmd += ["-filter_complex", ";".join(chains), *outs]
        subprocess.run(cmd, capture_output=True, check=True)
        n = len(frames)
        return [
            list(np.fromfile(tmp / f"a{k}.raw", np.uint8).reshape(n, h, w))
            for k in range(len(grid))
        ]


def ffmpeg_alpha(
    frames: list[np.ndarray] | list[Planes],
    key: tuple[int, int, int],
    similarity: float = 0.1,
    blend: float = 0.05,
) -> list[np.ndarray]:
    """chromakey's alpha plane for RGB frames or I420 planes, one setting."""
    return ffmpeg_alpha_grid(frames, key, ((similarity, blend),))[0]


def despill_green(rgb: np.ndarray, blue: bool = False) -> np.ndarray:
    """ffmpeg ``despill``'s default: ``g = min(g, (r + b) / 2)`` (blue: ``b = min(b, (r + g) / 2)``)."""
    f = rgb.astype(np.float32)
    if blue:
        f[..., 2] = np.minimum(f[..., 2], 0.5 * (f[..., 0] + f[..., 1]))
    else:
        f[..., 1] = np.minimum(f[..., 1], 0.5 * (f[..., 0] + f[..., 2]))
    return f


def key_uv(key: tuple[int, int, int]) -> tuple[int, int]:
    """The key's (U, V) as chromakey derives it: BT.601 full-range weights, 10-bit fixed point."""
    r, g, b = key
    u = ((-round(0.16874 * 1024) * r - round(0.33126 * 1024) * g + 512 * b + 511) >> 10) + 128
    v = ((512 * r - round(0.41869 * 1024) * g - round(0.08131 * 1024) * b + 511) >> 10) + 128
    return u, v


@njit(cache=True, nogil=True)
def _diff(u: np.ndarray, v: np.ndarray, ku: float, kv: float, out: np.ndarray) -> None:
    h, w = out.shape
    for i in range(h):
        for j in range(w):
            s = 0.0
            # a 3x3 window in luma pixels, each read from its chroma sample
            for di in range(-1, 2):
                yi = min(max(i + di, 0), h - 1) >> 1
                for dj in range(-1, 2):
                    xj = min(max(j + dj, 0), w - 1) >> 1
                    du = float(u[yi, xj]) - ku
                    dv = float(v[yi, xj]) - kv
                    s += math.sqrt((du * du + dv * dv) / (255.0 * 255.0 * 2.0))
            out[i, j] = s / 9.0


def chromakey_diff(planes: Planes, key: tuple[int, int, int]) -> np.ndarray:
    """chromakey's per-pixel distance (before similarity/blend), re-implemented from its
    documented maths for a fast grid search; frame borders clamp (ffmpeg's differ slightly).
    ``chromakey_alpha(diff, s, b)`` then gives its alpha to within a level or so."""
    y, u, v = planes
    ku, kv = key_uv(key)
    out = np.empty(y.shape, np.float32)
    _diff(u, v, float(ku), float(kv), out)
    return out


def chromakey_alpha(diff: np.ndarray, similarity: float, blend: float) -> np.ndarray:
    """(H, W) uint8 alpha from ``chromakey_diff`` under one setting."""
    if blend > 1e-4:
        a = np.clip((diff - similarity) / blend, 0.0, 1.0) * 255.0
        return a.astype(np.uint8)
    return np.where(diff > similarity, 255, 0).astype(np.uint8)
