"""The ``alpha_packed`` output: colour and matte side by side in one I420 frame.

WebRTC carries no alpha, so a page that wants to lay the avatar over its own content gets
one track twice as wide as the avatar:

- left half: the avatar's colour **premultiplied** by its matte (keyed over black, the
  keyer's despill included). Premultiplied, because 4:2:0 chroma and the codec smear
  colour across the matte's edge: smeared into black it stays dark and the edge cannot
  grow a green or grey fringe, while a straight colour would carry the screen's colour
  into every half-transparent pixel;
- right half: the matte as luma (``Y = 16 + 219 * alpha``, studio range, neutral chroma),
  so a browser decodes it as grey with ``R = G = B = alpha``.

``greenroom-transparent.js`` (``src/greenroom/web/static``) draws it back transparent.
The packing is one fused pass over the keyed frame and its matte.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from greenroom.keying.frame import I420Frame, chroma_size

NEUTRAL = 128


ALPHA_TO_Y = np.array([16 + (a * 219 + 127) // 255 for a in range(256)], np.uint8)
"""Matte 0..255 -> studio-range luma 16..235."""


@njit(cache=True, nogil=True)
def _pack(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    alpha: np.ndarray,
    lut: np.ndarray,
    oy: np.ndarray,
    ou: np.ndarray,
    ov: np.ndarray,
) -> None:
    h, w = y.shape
    ch, cw = u.shape
    # explicit loops: numba's slice assignment copies byte by byte, these become block copies
    for r in range(h):
        for c in range(w):
            oy[r, c] = y[r, c]
        for c in range(w):
            oy[r, w + c] = lut[alpha[r, c]]
        if r < ch:
            # chroma column cw onwards covers luma columns w.. (the matte): neutral
            for c in range(cw):
                ou[r, c] = u[r, c]
                ov[r, c] = v[r, c]
            for c in range(cw, ou.shape[1]):
                ou[r, c] = NEUTRAL
                ov[r, c] = NEUTRAL


def packed_size(width: int, height: int) -> tuple[int, int]:
    """Size of the packed track for an avatar of ``width`` x ``height``."""
    return 2 * width, height


def pack(keyed: I420Frame, alpha: np.ndarray, out: I420Frame) -> I420Frame:
    """Write ``keyed`` (the avatar over black) and its (H, W) uint8 ``alpha`` into ``out``
    (2W x H): colour left, matte right."""
    w, h = keyed.size
    if alpha.shape != (h, w) or alpha.dtype != np.uint8:
        raise ValueError(f"alpha must be ({h}, {w}) uint8")
    if out.size != packed_size(w, h):
        raise ValueError(f"out must be {2 * w}x{h}")
    _pack(keyed.y, keyed.u, keyed.v, alpha, ALPHA_TO_Y, out.y, out.u, out.v)
    return out


def blank_packed(width: int, height: int) -> bytearray:
    """A packed frame with nothing in it (matte 0 everywhere): the waiting frame."""
    buf = bytearray(I420Frame.nbytes_for(*packed_size(width, height)))
    out = I420Frame.from_buffer(buf, *packed_size(width, height))
    out.y[:, :width] = 16
    out.y[:, width:] = 16
    out.u[...] = NEUTRAL
    out.v[...] = NEUTRAL
    return buf


__all__ = ["blank_packed", "chroma_size", "pack", "packed_size"]
