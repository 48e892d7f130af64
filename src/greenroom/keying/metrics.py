"""Alpha-matte quality metrics, following the video-matting conventions (RVM).

All metrics compare a predicted alpha with the true alpha, both as floats in [0, 1]
(predictions are usually uint8 / 255):

- ``mad``: mean |p - g| over the full frame; ``mse``: mean (p - g)^2.
- ``sad``: sum |p - g| / 1000 per frame.
- ``grad``: sum (|grad G_s p| - |grad G_s g|)^2 / 1000 per frame, Gaussian derivative s = 1.4
  (RVM's filters: unit L2 norm).
- ``edge_mad``: mean |p - g| over the band within 3 px of the true edge (0 < g < 1, dilated).
- ``dtssd``: sqrt(mean(((p_t - p_{t-1}) - (g_t - g_{t-1}))^2)) per frame pair.

Per-frame values are averaged over frames. Reported raw (``mad`` 1.0e-3 is "1.0" in the
x1e3 tables of the literature; ``dtssd`` 1.5e-2 is "1.5" in the x1e2 tables).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def _gauss_deriv_kernels(sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """RVM's separable Gaussian and Gaussian-derivative filters, each of unit L2 norm."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -x * g / sigma**2
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


@njit(cache=True, nogil=True)
def _conv_rows(src: np.ndarray, k: np.ndarray, out: np.ndarray) -> None:
    h, w = src.shape
    r = k.shape[0] // 2
    for i in range(h):
        for j in range(w):
            s = 0.0
            for t in range(-r, r + 1):
                s += k[t + r] * src[i, min(max(j + t, 0), w - 1)]
            out[i, j] = s


@njit(cache=True, nogil=True)
def _conv_cols(src: np.ndarray, k: np.ndarray, out: np.ndarray) -> None:
    h, w = src.shape
    r = k.shape[0] // 2
    for i in range(h):
        for j in range(w):
            s = 0.0
            for t in range(-r, r + 1):
                s += k[t + r] * src[min(max(i + t, 0), h - 1), j]
            out[i, j] = s


def gradient_magnitude(a: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """|grad (G_sigma * a)| with Gaussian derivative filters."""
    g, dg = _gauss_deriv_kernels(sigma)
    a = np.ascontiguousarray(a, np.float64)
    t = np.empty_like(a)
    gx = np.empty_like(a)
    gy = np.empty_like(a)
    _conv_rows(a, dg, t)
    _conv_cols(t, g, gx)
    _conv_rows(a, g, t)
    _conv_cols(t, dg, gy)
    out: np.ndarray = np.sqrt(gx * gx + gy * gy)
    return out


def edge_band(gt: np.ndarray, radius: int = 3) -> np.ndarray:
    """Pixels within ``radius`` of the true edge: 0 < g < 1 or a 0/1 step, dilated."""
    solid = gt >= 0.5
    band = (gt > 0) & (gt < 1)
    band[:, 1:] |= solid[:, 1:] != solid[:, :-1]
    band[1:, :] |= solid[1:, :] != solid[:-1, :]
    out = band.copy()
    for _ in range(radius):
        grow = out.copy()
        grow[1:, :] |= out[:-1, :]
        grow[:-1, :] |= out[1:, :]
        grow[:, 1:] |= out[:, :-1]
        grow[:, :-1] |= out[:, 1:]
        out = grow
    return out


class MatteScore:
    """Accumulates metrics over a clip, one frame at a time (frames in order)."""

    def __init__(self, grad: bool = True):
        self.grad = grad
        self.n = 0
        self.sums = {"mad": 0.0, "mse": 0.0, "sad": 0.0, "grad": 0.0, "edge_mad": 0.0}
        self.dt_sum = 0.0
        self.dt_n = 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, pred: np.ndarray, gt: np.ndarray, band: np.ndarray | None = None) -> None:
        """``pred`` (H, W) uint8 (255 = avatar) or float in [0, 1]; ``gt`` float in [0, 1].

        ``band``: the edge band of ``gt`` if already computed (``edge_band``).
        """
        p = pred.astype(np.float32) / 255.0 if pred.dtype == np.uint8 else pred.astype(np.float32)
        g = gt.astype(np.float32)
        if p.shape != g.shape:
            raise ValueError(f"prediction {p.shape} and truth {g.shape} differ in shape")
        d = p - g
        ad = np.abs(d)
        self.sums["mad"] += float(ad.mean())
        self.sums["mse"] += float((d * d).mean())
        self.sums["sad"] += float(ad.sum()) / 1000.0
        if band is None:
            band = edge_band(g)
        self.sums["edge_mad"] += float(ad[band].mean()) if band.any() else 0.0
        if self.grad:
            e = gradient_magnitude(p) - gradient_magnitude(g)
            self.sums["grad"] += float((e * e).sum()) / 1000.0
        if self._prev is not None:
            pp, gp = self._prev
            dd = (p - pp) - (g - gp)
            self.dt_sum += math.sqrt(float((dd * dd).mean()))
            self.dt_n += 1
        self._prev = (p, g)
        self.n += 1

    def result(self) -> dict[str, float]:
        out = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        if not self.grad:
            out.pop("grad")
        out["dtssd"] = self.dt_sum / max(self.dt_n, 1)
        out["frames"] = float(self.n)
        return out


def score_clip(
    preds: list[np.ndarray],
    gts: list[np.ndarray],
    grad: bool = True,
    bands: list[np.ndarray] | None = None,
) -> dict[str, float]:
    """Metrics of a whole clip (lists of per-frame predictions and truths, in order).

    ``bands``: the truths' edge bands, when scoring many predictions against one clip.
    """
    s = MatteScore(grad=grad)
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        s.add(p, g, None if bands is None else bands[i])
    return s.result()
