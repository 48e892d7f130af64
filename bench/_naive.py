"""The "naive numpy chain" baseline: float32 CbCr distance key + despill + alpha blend.

What a user writes first with numpy: every step a whole-frame temporary. Same
similarity/blend mapping as ffmpeg's chromakey (per pixel, no 3x3 average).
"""

from __future__ import annotations

import numpy as np


def _cbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    cb = (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255.0
    cr = (0.5 * r - 0.418688 * g - 0.081312 * b) / 255.0
    return cb, cr


def naive_alpha(
    frame: np.ndarray, key: tuple[int, int, int], similarity=0.1, blend=0.05
) -> np.ndarray:
    f = frame.astype(np.float32)
    cb, cr = _cbcr(f)
    kcb, kcr = _cbcr(np.array(key, np.float32))
    d = np.sqrt(((cb - kcb) ** 2 + (cr - kcr) ** 2) / 2.0)
    return np.clip((d - similarity) / blend, 0.0, 1.0)


def naive_composite(frame: np.ndarray, bg: np.ndarray, key: tuple[int, int, int]) -> np.ndarray:
    a = naive_alpha(frame, key)[..., None]
    f = frame.astype(np.float32)
    f[..., 1] = np.minimum(f[..., 1], (f[..., 0] + f[..., 2]) * 0.5)
    out = a * f + (1.0 - a) * bg.astype(np.float32)
    return (out + 0.5).astype(np.uint8)
