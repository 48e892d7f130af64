"""``ChromaKeyer``: a colour-difference keyer against an estimated clean plate.

Per pixel, the raw key is ``1 - d(F) / d(S)`` where ``d`` is the screen primary minus
the larger of the other two (Vlahos colour difference) of the frame ``F`` and of the
clean plate ``S`` (the screen's colour in that region, re-estimated every few frames
from confident screen pixels). Clip points map it to alpha. Compositing subtracts the
screen that shows through (``F - (1-a) S``, which is also the despill for the soft
edge), limits what spill remains, and adds the background: one pass per pixel.

On I420 the colour difference lives in the chroma planes (luma cancels out of it), so
alpha is first found at chroma resolution and then carried to full resolution by a
local linear model on luma (a guided filter over 3x3 chroma windows): edges follow the
sharp luma instead of the blocky 4:2:0 chroma.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from greenroom.keying import _kernels as K
from greenroom.keying.base import (
    NO_ALPHA,
    RgbKeyerMethods,
    check_pair_i420,
    use_threads,
)
from greenroom.keying.frame import I420Frame, chroma_size
from greenroom.keying.params import DEFAULT_KEY, ChromaParams

# BT.601 limited range: d(RGB)/d(U-128, V-128) per primary, and RGB -> U, V, Y weights.
_RGB_FROM_UV = np.array([[0.0, 1.596027], [-0.391762, -0.812968], [2.017232, 0.0]])
_U_W = np.array([-0.148223, -0.290993, 0.439216])
_V_W = np.array([0.439216, -0.367788, -0.071427])
_Y_W = np.array([0.256788, 0.504129, 0.097906])
_Y_W601 = np.array([0.299, 0.587, 0.114])
#: Clip applied at chroma resolution before the luma-guided model: just above the
#: noise floor (NOISE_CLIP standard deviations of the screen's colour difference, at
#: least PRE_CLIP_MIN), so the background is exactly 0 there but faint strands survive.
NOISE_CLIP = 3.5
PRE_CLIP_MIN = 0.015


def detect_key_color(rgb_samples: np.ndarray) -> tuple[int, int, int] | None:
    """The screen colour among (N, 3) uint8 samples: the median of the largest group of
    strongly green, blue or red pixels; None when under 2% of the samples qualify."""
    s = rgb_samples.reshape(-1, 3).astype(np.int16)
    best: np.ndarray | None = None
    for p in range(3):
        q = [c for c in range(3) if c != p]
        d = s[:, p] - np.maximum(s[:, q[0]], s[:, q[1]])
        mask = (d > 40) & (s[:, p] > 60)
        if mask.sum() >= max(0.02 * len(s), 1) and (best is None or mask.sum() > best.sum()):
            best = mask
    if best is None:
        return None
    med = np.median(s[best], axis=0)
    return (int(med[0]), int(med[1]), int(med[2]))


def yuv_samples_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Co-located Y, U, V samples (same shape) -> (N, 3) uint8 RGB (BT.601 limited)."""
    yy = 1.164383 * (y.astype(np.float32).ravel() - 16.0)
    uu = u.astype(np.float32).ravel() - 128.0
    vv = v.astype(np.float32).ravel() - 128.0
    rgb = np.stack([yy + _RGB_FROM_UV[i, 0] * uu + _RGB_FROM_UV[i, 1] * vv for i in range(3)], -1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


class _Plate:
    """The clean plate: the screen's colour per region, kept at chroma resolution."""

    def __init__(self, width: int, height: int, cell: int):
        self.cw, self.ch = chroma_size(width, height)
        self.cell = cell
        self.gh = -(-self.ch // (cell // 2))
        self.gw = -(-self.cw // (cell // 2))
        self.grid: np.ndarray | None = None  # (gh, gw, 3) RGB float64
        self.noise = 2.0  # standard deviation of the screen's colour difference
        self.planes: dict[str, np.ndarray] = {}
        self.version = 0
        self.built: dict[str, int] = {}

    def update(self, sums: np.ndarray, fallback: tuple[int, int, int], rgb_space: bool) -> None:
        counts = sums[..., 3]
        # noise: the spread of the screen's colour difference inside each region
        many = counts >= 8
        if many.any():
            n = counts[many]
            var = sums[many, 5] / n - (sums[many, 4] / n) ** 2
            noise = float(np.sqrt(max(float(np.median(var)), 0.0)))
            self.noise = noise if self.grid is None else 0.5 * (self.noise + noise)
        valid = (counts >= 3).astype(np.uint8)
        grid = np.zeros((self.gh, self.gw, 3))
        ok = counts > 0
        grid[ok] = sums[ok, :3] / counts[ok, None]
        if not rgb_space:  # Y, U, V means -> RGB
            yy = 1.164383 * (grid[..., 0] - 16.0)
            uu, vv = grid[..., 1] - 128.0, grid[..., 2] - 128.0
            grid = np.stack(
                [yy + _RGB_FROM_UV[i, 0] * uu + _RGB_FROM_UV[i, 1] * vv for i in range(3)], -1
            )
        K.plate_fill(grid, valid, np.asarray(fallback, np.float64))
        if self.grid is not None:
            grid = self.grid + 0.5 * (grid - self.grid)
        self.grid = grid
        self.version += 1

    def get(
        self, names: tuple[str, ...], prim: int, q: tuple[int, int], d_min: float
    ) -> list[np.ndarray]:
        """Planes at chroma resolution: 'r','g','b' | 'y','u','v' and 'inv_d'."""
        assert self.grid is not None
        g = self.grid
        src = {}
        for name in names:
            if self.built.get(name) == self.version:
                continue
            if name in "rgb":
                src[name] = g[..., "rgb".index(name)]
            elif name == "y":
                src[name] = 16.0 + g @ _Y_W
            elif name == "u":
                src[name] = 128.0 + g @ _U_W
            elif name == "v":
                src[name] = 128.0 + g @ _V_W
            else:
                d = g[..., prim] - np.maximum(g[..., q[0]], g[..., q[1]])
                src[name] = 1.0 / np.maximum(d, d_min)
        for name, grid in src.items():
            plane = self.planes.get(name)
            if plane is None:
                plane = self.planes[name] = np.empty((self.ch, self.cw), np.float32)
            tmp = np.empty((self.gh, self.cw), np.float32)
            K.resize_bilinear(np.ascontiguousarray(grid, np.float32), plane, tmp)
            self.built[name] = self.version
        return [self.planes[n] for n in names]


class ChromaKeyer(RgbKeyerMethods):
    """Green/blue-screen keyer with soft edges, spill removal and temporal stability.

    Example:
        >>> k = ChromaKeyer()                                  # key colour found automatically
        >>> out = k.composite(frame, background)               # (H, W, 3) uint8 RGB in and out
        >>> alpha = k.matte(frame)                             # (H, W) uint8, 255 = avatar

    Thread safety: one keyer per stream; ``set_params`` may be called from another thread.
    """

    def __init__(self, params: ChromaParams | None = None, **overrides: Any):
        params = params or ChromaParams()
        self._params = params.__class__(**{**params.__dict__, **overrides}) if overrides else params
        self._lock = threading.Lock()
        self._found_key: tuple[int, int, int] | None = None
        self.reset()

    # ---------------------------------------------------------------- settings
    @property
    def params(self) -> ChromaParams:
        return self._params

    def set_params(self, **changes: Any) -> ChromaParams:
        """Change live settings (``ChromaParams.LIVE``); validated before anything changes."""
        new = self._params.with_live(**changes)
        with self._lock:
            if new.key_color != self._params.key_color:
                self._found_key = None
                self._plate = None
            self._params = new
        return new

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        """The screen colour in use: the given one, else the one found (None before any frame)."""
        return self._params.key_color or self._found_key

    def reset(self) -> None:
        """Forget temporal state and the clean plate."""
        self._plate: _Plate | None = None
        self._frames = 0
        self._prev: np.ndarray | None = None
        self._prev_kind = ""
        self._prev_fresh = False
        self._bufs: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- internals
    def _key(self) -> tuple[tuple[int, int, int], int, tuple[int, int]]:
        key = self.key_color or DEFAULT_KEY
        prim = int(np.argmax(key))
        q = tuple(c for c in range(3) if c != prim)
        return key, prim, (q[0], q[1])

    def _buf(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        b = self._bufs.get(name)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self._bufs[name] = np.empty(shape, dtype)
        return b

    def _maybe_update_plate(
        self,
        width: int,
        height: int,
        sample_rgb: Callable[[], np.ndarray],
        accumulate: Callable[[int, tuple[int, int], float, np.ndarray], None],
        rgb_space: bool,
    ) -> None:
        """Re-estimate the clean plate every ``plate_interval`` frames.

        ``accumulate(prim, q, threshold, sums)`` adds up confident screen samples per
        region, as R, G, B when ``rgb_space`` else as Y, U, V.
        """
        p = self._params
        if self._plate is None or (self._plate.cw, self._plate.ch) != chroma_size(width, height):
            self._plate = _Plate(width, height, p.plate_cell)
            self._frames = 0
        if self._frames % p.plate_interval == 0:
            if p.key_color is None and self._found_key is None:
                self._found_key = detect_key_color(sample_rgb())
            key, prim, q = self._key()
            d_key = key[prim] - max(key[q[0]], key[q[1]])
            plate = self._plate
            sums = np.zeros((plate.gh, plate.gw, 6))
            accumulate(prim, q, 0.45 * d_key, sums)
            plate.update(sums, key, rgb_space=rgb_space)
        self._frames += 1

    def _thresholds(self) -> tuple[float, float]:
        p = self._params
        lo = p.clip_black + p.choke
        hi = p.clip_white + p.choke
        return lo, 1.0 / (hi - lo)

    # ---------------------------------------------------------------- RGB path
    def _run_rgb(
        self, frame: np.ndarray, bg: np.ndarray | None, want_alpha: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        h, w = frame.shape[:2]
        with self._lock:
            p = self._params

            def sample() -> np.ndarray:
                return frame[::8, ::8]

            def acc(prim, q, thr, sums):
                K.plate_accumulate_rgb(frame, p.plate_cell, prim, q[0], q[1], thr, sums)

            self._maybe_update_plate(w, h, sample, acc, rgb_space=True)
            key, prim, q = self._key()
            d_key = key[prim] - max(key[q[0]], key[q[1]])
            pr, pg, pb, inv_d = self._plate.get(("r", "g", "b", "inv_d"), prim, q, 0.25 * d_key)
            lo, inv_rng = self._thresholds()
            have_prev = (
                self._prev is not None and self._prev_kind == "rgb" and self._prev.shape == (h, w)
            )
            if not have_prev:
                self._prev = np.zeros((h, w), np.uint8)
                self._prev_kind = "rgb"
            use_prev = have_prev and self._prev_fresh
            self._prev_fresh = p.temporal > 0
            alpha = np.empty((h, w), np.uint8) if want_alpha else NO_ALPHA
            out = (
                np.empty_like(frame)
                if bg is not None
                else self._buf("rgb_out", frame.shape, np.uint8)
            )
            bgx = bg if bg is not None else out
            f32 = np.float32
            args = (
                frame,
                bgx,
                K.RgbPlate(pr, pg, pb, inv_d),
                K.Primary(*(f32(prim == c) for c in range(3))),
                K.Clip(f32(lo), f32(inv_rng)),
                K.Temporal(f32(p.temporal), f32(1.0 / p.temporal_threshold), self._prev, use_prev),
                K.RgbDespill(f32(p.despill), f32(p.despill * p.despill_luma * _Y_W601[prim])),
                out,
                alpha,
                want_alpha,
            )
            threads = use_threads(p.threads)
            if threads > 1:
                K.chroma_rgb_par(threads * 4, *args, np.empty((threads * 4, w), np.float32))
            else:
                K.chroma_rgb_rows(0, h, *args, self._buf("arow", (w,), np.float32))
        return (out if bg is not None else None), (alpha if want_alpha else None)

    # ---------------------------------------------------------------- I420 path
    def composite_i420(
        self,
        frame: I420Frame,
        background: I420Frame,
        out: I420Frame | None = None,
        alpha_out: np.ndarray | None = None,
    ) -> I420Frame:
        """Key ``frame`` and composite it over ``background`` without leaving I420.

        Args:
            frame, background: same-size I420 frames.
            out: optional destination (may not alias ``frame``).
            alpha_out: optional (H, W) uint8 array that receives the matte.
        """
        out = check_pair_i420(frame, background, out)
        if alpha_out is not None and (
            alpha_out.shape != (frame.height, frame.width) or alpha_out.dtype != np.uint8
        ):
            raise ValueError(f"alpha_out must be ({frame.height}, {frame.width}) uint8")
        self._run_i420(frame, background, out, alpha_out)
        return out

    def matte_i420(self, frame: I420Frame) -> np.ndarray:
        """(H, W) uint8 alpha of an I420 frame, 255 = avatar."""
        alpha = np.empty((frame.height, frame.width), np.uint8)
        scratch = self._bufs.get("i420_scratch")
        if scratch is None or scratch.size != frame.size:
            scratch = I420Frame.empty(frame.width, frame.height)
            self._bufs["i420_scratch"] = scratch  # type: ignore[assignment]
        self._run_i420(frame, scratch, scratch, alpha)
        return alpha

    def _run_i420(
        self, frame: I420Frame, bg: I420Frame, out: I420Frame, alpha: np.ndarray | None
    ) -> None:
        w, h = frame.size
        cw, ch = chroma_size(w, h)
        planes = frame.planes
        with self._lock:
            p = self._params

            def sample() -> np.ndarray:
                return yuv_samples_to_rgb(frame.y[::8, ::8], frame.u[::4, ::4], frame.v[::4, ::4])

            def acc(prim, q, thr, sums):
                axis = K.KeyAxis(*self._uv_coeffs(prim, q))
                K.plate_accumulate_i420(planes, p.plate_cell // 2, axis, thr, sums)

            self._maybe_update_plate(w, h, sample, acc, rgb_space=False)
            key, prim, q = self._key()
            c1u, c1v, c2u, c2v = self._uv_coeffs(prim, q)
            d_key = key[prim] - max(key[q[0]], key[q[1]])
            py, pu, pv, inv_d = self._plate.get(("y", "u", "v", "inv_d"), prim, q, 0.25 * d_key)
            lo, inv_rng = self._thresholds()
            have_prev = (
                self._prev is not None
                and self._prev_kind == "i420"
                and self._prev.shape == (ch, cw)
            )
            if not have_prev:
                self._prev = np.zeros((ch, cw), np.float32)
                self._prev_kind = "i420"
            a_lo = self._buf("a_lo", (ch, cw), np.float32)
            ca = self._buf("ca", (ch, cw), np.float32)
            cb = self._buf("cb", (ch, cw), np.float32)
            cat = self._buf("cat", (ch, cw), np.uint8)
            tmp = self._buf("tmp", (ch, cw), np.uint8)
            kind = self._buf("kind", (ch, cw), np.uint8)
            blk = self._buf("blk", (ch, cw), np.uint8)
            # a mild clip at chroma resolution keeps the key linear in the colour mix (so
            # the luma model can find thin strands); the real clip follows at full res
            pre = min(max(NOISE_CLIP * self._plate.noise / max(d_key, 1.0), PRE_CLIP_MIN), lo)
            pre_lo, pre_hi = pre, 1.0 - pre
            lo2 = (lo - pre_lo) / (pre_hi - pre_lo)
            inv2 = inv_rng * (pre_hi - pre_lo)
            f32 = np.float32
            temporal = K.Temporal(
                f32(p.temporal),
                f32(1.0 / p.temporal_threshold),
                self._prev,
                have_prev and self._prev_fresh,
            )
            K.chroma_lowres(
                frame.u,
                frame.v,
                inv_d,
                K.KeyAxis(f32(c1u), f32(c1v), f32(c2u), f32(c2v)),
                K.Clip(f32(pre_lo), f32(1.0 / (pre_hi - pre_lo))),
                temporal,
                a_lo,
                cat,
            )
            self._prev_fresh = p.temporal > 0
            K.dilate_same(cat, tmp, kind)
            K.guided_coeffs(
                frame.y, a_lo, p.edge_eps, kind, ca, cb, self._buf("ylo", (ch, cw), np.float32)
            )
            K.dilate_same(kind, tmp, blk)
            # despill moves chroma along -(key primary) and puts back part of the luma
            despill = K.YuvDespill(
                float(p.despill),
                float(-_U_W[prim]),
                float(-_V_W[prim]),
                float(-_Y_W[prim] * (1.0 - p.despill_luma)),
            )
            args = (
                planes,
                bg.planes,
                K.Guide(ca, cb, blk),
                K.Planes(py, pu, pv),
                K.KeyAxis(c1u, c1v, c2u, c2v),
                despill,
                K.Clip(lo2, inv2),
                out.planes,
                alpha if alpha is not None else NO_ALPHA,
                alpha is not None,
            )
            if use_threads(p.threads) > 1:
                K.chroma_i420_par(p.threads * 4, *args)
            else:
                K.chroma_i420_rows(0, ch, *args)

    @staticmethod
    def _uv_coeffs(prim: int, q: tuple[int, int]) -> tuple[float, float, float, float]:
        m = _RGB_FROM_UV
        c1 = m[prim] - m[q[0]]
        c2 = m[prim] - m[q[1]]
        return float(c1[0]), float(c1[1]), float(c2[0]), float(c2[1])
