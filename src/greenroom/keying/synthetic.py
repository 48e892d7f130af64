"""Synthetic avatar-on-screen clips with exact ground-truth alpha, for tests and benches.

A head-and-shoulders silhouette (head, neck, shoulders) with fine hair strands moves
over a key-coloured screen lit unevenly. Coverage is anti-aliased by 4x4 supersampling
near every edge, so the alpha is exact to 1/16. The foreground picks up green spill
near its edges, and sensor noise is added after compositing ``I = a F + (1 - a) B``.

    clip = SyntheticClip(1280, 720)
    rgb, alpha = clip.frame(10)            # (720, 1280, 3) uint8, (720, 1280) float32
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

SKIN = (205.0, 150.0, 125.0)
SHIRT = (52.0, 60.0, 112.0)
HAIR = (62.0, 42.0, 30.0)
STRAND = (96.0, 70.0, 44.0)


@njit(cache=True, nogil=True, inline="always")
def _ell(
    x: float, y: float, cx: float, cy: float, rx: float, ry: float, cos_t: float, sin_t: float
) -> float:
    """Approximate signed distance to a rotated ellipse (negative inside)."""
    dx = x - cx
    dy = y - cy
    u = dx * cos_t + dy * sin_t
    v = -dx * sin_t + dy * cos_t
    q = math.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    return (q - 1.0) * min(rx, ry)


@njit(cache=True, nogil=True, inline="always")
def _body_sd(x: float, y: float, g: np.ndarray) -> tuple[float, int]:
    """(signed distance, part) for the union head / neck / shoulders; part 0 head 1 neck 2 shirt."""
    d0 = _ell(x, y, g[0], g[1], g[2], g[3], g[4], g[5])
    # neck: a rounded box from the head's centre down to the shoulders
    nx = abs(x - g[6]) - g[7]
    ny = abs(y - g[8]) - g[9]
    d1 = min(max(nx, ny), 0.0) + math.sqrt(max(nx, 0.0) ** 2 + max(ny, 0.0) ** 2)
    d2 = _ell(x, y, g[10], g[11], g[12], g[13], 1.0, 0.0)
    # shoulders end in a flat top line (a wide ellipse, clipped by y > top)
    d2 = max(d2, g[14] - y)
    best = d0
    part = 0
    if d1 < best:
        best = d1
        part = 1
    if d2 < best:
        best = d2
        part = 2
    return best, part


@njit(cache=True, nogil=True)
def _render_body(g: np.ndarray, alpha: np.ndarray, part: np.ndarray, dist: np.ndarray) -> None:
    h, w = alpha.shape
    for i in range(h):
        for j in range(w):
            d, p = _body_sd(j + 0.5, i + 0.5, g)
            part[i, j] = p
            dist[i, j] = d
            if d > 1.5:
                alpha[i, j] = 0.0
            elif d < -1.5:
                alpha[i, j] = 1.0
            else:
                c = 0
                for si in range(4):
                    for sj in range(4):
                        ds, _ = _body_sd(j + 0.125 + 0.25 * sj, i + 0.125 + 0.25 * si, g)
                        if ds < 0.0:
                            c += 1
                alpha[i, j] = c / 16.0


@njit(cache=True, nogil=True)
def _render_strands(seg: np.ndarray, hair: np.ndarray) -> None:
    """seg rows: x0, y0, x1, y1, half width, opacity. hair = 1 - prod(1 - cov * op)."""
    h, w = hair.shape
    for k in range(seg.shape[0]):
        x0, y0, x1, y1, hw, op = seg[k, 0], seg[k, 1], seg[k, 2], seg[k, 3], seg[k, 4], seg[k, 5]
        vx = x1 - x0
        vy = y1 - y0
        ll = vx * vx + vy * vy + 1e-12
        i0 = max(int(min(y0, y1) - hw - 2), 0)
        i1 = min(int(max(y0, y1) + hw + 2), h - 1)
        j0 = max(int(min(x0, x1) - hw - 2), 0)
        j1 = min(int(max(x0, x1) + hw + 2), w - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                c = 0
                for si in range(4):
                    for sj in range(4):
                        px = j + 0.125 + 0.25 * sj
                        py = i + 0.125 + 0.25 * si
                        t = ((px - x0) * vx + (py - y0) * vy) / ll
                        t = min(max(t, 0.0), 1.0)
                        dx = px - (x0 + t * vx)
                        dy = py - (y0 + t * vy)
                        if dx * dx + dy * dy <= hw * hw:
                            c += 1
                if c > 0:
                    cov = c / 16.0 * op
                    hair[i, j] = 1.0 - (1.0 - hair[i, j]) * (1.0 - cov)


@njit(cache=True, nogil=True)
def _compose(
    g: np.ndarray,
    body: np.ndarray,
    part: np.ndarray,
    dist: np.ndarray,
    hair: np.ndarray,
    key: np.ndarray,
    falloff: float,
    spill: float,
    noise: np.ndarray,
    out: np.ndarray,
    alpha: np.ndarray,
) -> None:
    h, w = body.shape
    cx = w * 0.5
    cy = h * 0.5
    rr = (cx * cx + cy * cy) * 0.25
    for i in range(h):
        for j in range(w):
            ab = body[i, j]
            ah = hair[i, j]
            a = 1.0 - (1.0 - ab) * (1.0 - ah)
            alpha[i, j] = a
            # uneven light on the screen: brighter in the middle, darker at the corners
            r2 = ((j - cx) ** 2 + (i - cy) ** 2) / rr
            light = 1.0 + falloff * (1.0 - 0.5 * r2)
            for c in range(3):
                bgc = key[c] * light
                if a > 0.0:
                    p = part[i, j]
                    if p == 0:
                        base = (205.0, 150.0, 125.0)[c]
                        # simple shading across the face
                        base *= 1.0 - 0.12 * ((j - g[0]) / g[2])
                    elif p == 1:
                        base = (190.0, 138.0, 115.0)[c]
                    else:
                        base = (52.0, 60.0, 112.0)[c]
                    # green light wraps around the edge: spill decays inwards
                    sp = spill * math.exp(dist[i, j] / 3.0) if dist[i, j] > -12.0 else 0.0
                    fb = base + sp * (key[c] - base)
                    fh = (96.0, 70.0, 44.0)[c]
                    fh = fh + 0.2 * spill * (key[c] - fh)
                    f = (ab * fb + (1.0 - ab) * ah * fh) / a
                    v = a * f + (1.0 - a) * bgc
                else:
                    v = bgc
                v += noise[i, j, c]
                out[i, j, c] = np.uint8(min(max(int(v + 0.5), 0), 255))


@dataclass
class SyntheticClip:
    """A deterministic clip; ``frame(n)`` renders frame ``n`` (any order)."""

    width: int = 1280
    height: int = 720
    key: tuple[int, int, int] = (0, 177, 64)
    noise: float = 2.0
    spill: float = 0.35
    falloff: float = 0.08
    fps: float = 30.0
    seed: int = 7
    strands: int = 60
    _strands: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        rows = []
        for _ in range(self.strands):
            # start on the upper half of the head outline (head-local, unit radii)
            ang = rng.uniform(-math.pi * 0.95, -math.pi * 0.05)
            length = rng.uniform(0.12, 0.45)
            curl = rng.uniform(-1.2, 1.2)
            hw = rng.uniform(0.3, 0.75)
            op = rng.uniform(0.5, 0.95)
            pts = []
            a = ang
            x, y = math.cos(ang) * 0.97, math.sin(ang) * 0.97
            for _k in range(7):
                pts.append((x, y))
                a += curl * 0.12
                x += math.cos(a) * length / 6
                y += math.sin(a) * length / 6
            for (xa, ya), (xb, yb) in itertools.pairwise(pts):
                rows.append((xa, ya, xb, yb, hw, op))
        self._strands = np.array(rows, np.float64)

    def geometry(self, n: int) -> np.ndarray:
        """Shape parameters at frame ``n`` (head sways and nods, shoulders follow)."""
        s = self.height / 720.0
        t = n / self.fps
        cx = self.width * 0.5 + 70 * s * math.sin(2 * math.pi * t / 3.1)
        cy = self.height * 0.40 + 12 * s * math.sin(2 * math.pi * t / 1.9)
        th = 0.10 * math.sin(2 * math.pi * t / 2.5)
        rx, ry = 105 * s, 135 * s
        sx = self.width * 0.5 + 0.4 * (cx - self.width * 0.5)
        top = self.height * 0.80
        # neck: a box (centre x, half width, centre y, half height) from chin to shoulders
        return np.array(
            [
                cx, cy, rx, ry, math.cos(th), math.sin(th),  # head
                0.5 * (cx + sx), 45 * s, 0.5 * (cy + 100 * s + top), 0.5 * (top - cy - 100 * s) + 12 * s,
                sx, self.height * 1.18, 330 * s, 330 * s,  # shoulders ellipse
                top,  # shoulders top line
            ]
        )  # fmt: skip

    def frame(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 (H, W, 3), true alpha float32 (H, W) in [0, 1])."""
        h, w = self.height, self.width
        g = self.geometry(n)
        body = np.empty((h, w), np.float32)
        part = np.empty((h, w), np.uint8)
        dist = np.empty((h, w), np.float32)
        _render_body(g, body, part, dist)
        hair = np.zeros((h, w), np.float32)
        seg = self._strands.copy()
        cx, cy, rx, ry, ct, st = g[:6]
        for a, b in ((0, 1), (2, 3)):  # head-local unit coords -> pixels
            u = seg[:, a] * rx
            v = seg[:, b] * ry
            seg[:, a] = cx + u * ct - v * st
            seg[:, b] = cy + u * st + v * ct
        seg[:, 4] *= self.height / 720.0
        _render_strands(seg, hair)
        noise = np.random.default_rng(self.seed * 100_003 + n).normal(0.0, self.noise, (h, w, 3))
        out = np.empty((h, w, 3), np.uint8)
        alpha = np.empty((h, w), np.float32)
        _compose(
            g,
            body,
            part,
            dist,
            hair,
            np.array(self.key, np.float64),
            self.falloff,
            self.spill,
            noise,
            out,
            alpha,
        )
        return out, alpha


def h264_roundtrip(
    frames: list[np.ndarray], fps: float = 30.0, crf: int = 20
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Encode RGB frames with libx264 (yuv420p, CRF ``crf``) in memory and decode them.

    Returns the decoded frames as (y, u, v) planes, the form a LiveKit subscriber sees.
    (``keying.codec_roundtrip`` has the live-stream codecs at real bit rates.)
    """
    from greenroom.keying.codec_roundtrip import h264_crf_roundtrip

    return h264_crf_roundtrip(frames, fps=fps, crf=crf)
