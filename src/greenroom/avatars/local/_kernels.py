"""Numba kernels of the built-in avatar renderer: one fused pass per output frame.

No checks, no allocation, no I/O here; :mod:`greenroom.avatars.local.renderer` validates.

Layers are premultiplied float32 RGBA, passed flattened as (h, w*4), placed in the frame at a
(possibly fractional) offset; one offset holds for the whole layer, so the bilinear weights are
per-frame constants. Each row is split into the span the layers may cover and the plain screen
on either side: the screen parts are integer adds of a precomputed noise table, and only the
span does float compositing. Loops run over slices from 0 so LLVM can vectorise them.

Noise: ``noise`` is an int8 table (values already in 8-bit levels) of NOISE_LEN + 3 W entries;
each row starts at a pseudo-random offset into it. ``amp`` is 1 (noise) or 0 (clean).
"""

from __future__ import annotations

import numpy as np
from numba import njit

NOISE_LEN = 1 << 18
ROW_STRIDE = 7919  # odd prime: decorrelates the noise of neighbouring rows
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_HALF = np.float32(0.5)
_MAX = np.float32(255.0)
_I0 = np.int16(0)
_I255 = np.int16(255)
# BT.601 limited range, RGB 0..255 -> Y, and 4-pixel sums -> U, V (as LiveKit/WebRTC use)
_YR, _YG, _YB = np.float32(0.256788), np.float32(0.504129), np.float32(0.097906)
_UR, _UG, _UB = np.float32(-0.148223 / 4), np.float32(-0.290993 / 4), np.float32(0.439216 / 4)
_VR, _VG, _VB = np.float32(0.439216 / 4), np.float32(-0.367788 / 4), np.float32(-0.071427 / 4)


@njit(cache=True, nogil=True)
def _span(y, W, by, bx, bext, hy, hx, hext):
    """Columns [lo, hi) of row ``y`` that any layer covers (lo == hi: none).

    ``bext``/``hext`` (h - 1, 2) hold, per layer row, the columns [c0, c1) whose bilinear
    footprint (rows r, r + 1; columns c, c + 1) has any coverage.
    """
    lo, hi = W, 0
    iy = y - by
    if 0 <= iy < bext.shape[0] and bext[iy, 1] > bext[iy, 0]:
        lo, hi = min(lo, max(0, bx + bext[iy, 0])), max(hi, min(W, bx + bext[iy, 1]))
    iy = y - hy
    if 0 <= iy < hext.shape[0] and hext[iy, 1] > hext[iy, 0]:
        lo, hi = min(lo, max(0, hx + hext[iy, 0])), max(hi, min(W, hx + hext[iy, 1]))
    if lo >= hi:
        return 0, 0
    return lo, hi


@njit(cache=True, nogil=True)
def _bilinear(dst, r0, r1, w00, w01, w10, w11):
    """dst[k] = bilinear of rows r0/r1 at k (same pixel) and k + 4 (next pixel)."""
    for k in range(dst.shape[0]):
        dst[k] = w00 * r0[k] + w01 * r0[k + 4] + w10 * r1[k] + w11 * r1[k + 4]


@njit(cache=True, nogil=True)
def _layers(y, lo, hi, body, by, bx, bw, bext, head, hy, hx, hw, hext, acc, hv):
    """Premultiplied RGBA of head over body for columns [lo, hi) of row y into acc[4lo:4hi]."""
    acc[4 * lo : 4 * hi] = _ZERO
    iy = y - by
    x0, x1 = lo, lo
    if 0 <= iy < bext.shape[0]:
        x0, x1 = max(lo, bx + bext[iy, 0]), min(hi, bx + bext[iy, 1])
    if x1 > x0:
        k0, n = 4 * (x0 - bx), 4 * (x1 - x0)
        _bilinear(
            acc[4 * x0 : 4 * x0 + n], body[iy, k0 : k0 + n + 4], body[iy + 1, k0 : k0 + n + 4],
            bw[0], bw[1], bw[2], bw[3],
        )  # fmt: skip
    iy = y - hy
    x0, x1 = lo, lo
    if 0 <= iy < hext.shape[0]:
        x0, x1 = max(lo, hx + hext[iy, 0]), min(hi, hx + hext[iy, 1])
    if x1 > x0:
        k0, n = 4 * (x0 - hx), 4 * (x1 - x0)
        h = hv[:n]
        _bilinear(
            h, head[iy, k0 : k0 + n + 4], head[iy + 1, k0 : k0 + n + 4],
            hw[0], hw[1], hw[2], hw[3],
        )  # fmt: skip
        d = acc[4 * x0 : 4 * x0 + n]
        for j in range(n // 4):
            k = _ONE - h[4 * j + 3]
            for c in range(4):
                d[4 * j + c] = h[4 * j + c] + k * d[4 * j + c]


@njit(cache=True, nogil=True)
def _screen_noise(dst, src, nz, amp):
    for i in range(dst.shape[0]):
        v = np.int16(src[i]) + np.int16(amp) * np.int16(nz[i])
        dst[i] = np.uint8(min(max(v, _I0), _I255))


@njit(cache=True, nogil=True)
def _over_screen(acc, scr, nz, amp, rgb, al, want_alpha):
    """rgb (3n float32 0..255) = acc (4n premultiplied) over screen + noise; al (n) = alpha."""
    fa = np.float32(amp)
    for j in range(rgb.shape[0] // 3):
        a = acc[4 * j + 3]
        s = _ONE - a
        for c in range(3):
            v = acc[4 * j + c] + s * np.float32(scr[3 * j + c]) + fa * np.float32(nz[3 * j + c])
            rgb[3 * j + c] = min(max(v, _ZERO), _MAX)
        if want_alpha:
            al[j] = a


@njit(cache=True, nogil=True)
def render_rgb(
    screen, body, by, bx, bw, bext, head, hy, hx, hw, hext, noise, noise_off, amp, out, alpha,
    acc, hv, tmp,
):  # fmt: skip
    """Write the RGB frame ``out`` (H, W*3) uint8 and its exact ``alpha`` (H, W) float32.

    ``screen`` is (H, W*3) uint8; ``acc``, ``hv`` are (W*4,) and ``tmp`` (W*3,) float32 scratch.
    """
    H, W = alpha.shape[0], alpha.shape[1]
    for y in range(H):
        n0 = (noise_off + y * ROW_STRIDE) % NOISE_LEN
        nz = noise[n0 : n0 + 3 * W]
        lo, hi = _span(y, W, by, bx, bext, hy, hx, hext)
        _screen_noise(out[y, : 3 * lo], screen[y, : 3 * lo], nz[: 3 * lo], amp)
        _screen_noise(out[y, 3 * hi :], screen[y, 3 * hi :], nz[3 * hi :], amp)
        alpha[y, :lo] = _ZERO
        alpha[y, hi:] = _ZERO
        if hi > lo:
            _layers(y, lo, hi, body, by, bx, bw, bext, head, hy, hx, hw, hext, acc, hv)
            t = tmp[: 3 * (hi - lo)]
            _over_screen(
                acc[4 * lo : 4 * hi], screen[y, 3 * lo : 3 * hi], nz[3 * lo : 3 * hi], amp, t,
                alpha[y, lo:hi], True,
            )  # fmt: skip
            o = out[y, 3 * lo : 3 * hi]
            for i in range(t.shape[0]):
                o[i] = np.uint8(t[i] + _HALF)


@njit(cache=True, nogil=True)
def render_i420(
    screen, syuv, body, by, bx, bw, bext, head, hy, hx, hw, hext, noise, ny, nc, noise_off, amp,
    buf, alpha, want_alpha, acc, hv, tmp,
):  # fmt: skip
    """Write an I420 frame (BT.601 limited range) into the flat ``buf`` (W*H*3/2 uint8).

    ``syuv`` is the clean screen as a flat I420 buffer; ``alpha`` (H, W) float32 receives the
    exact alpha if ``want_alpha``; ``tmp`` is a (2, W*3) float32 scratch for one pair of rows.
    ``ny``/``nc`` are
    noise tables for Y and for U/V with the spread RGB noise has after the conversion, so the
    plain screen looks the same as the screen around the avatar.
    """
    H, W = screen.shape[0], screen.shape[1] // 3
    cw = W // 2
    uo = W * H
    vo = uo + cw * (H // 2)
    for y2 in range(H // 2):
        l0, h0 = _span(2 * y2, W, by, bx, bext, hy, hx, hext)
        l1, h1 = _span(2 * y2 + 1, W, by, bx, bext, hy, hx, hext)
        if h0 == 0:
            l0 = W
        if h1 == 0:
            l1 = W
        lo = min(l0, l1) & ~1
        hi = min(W, (max(h0, h1) + 1) & ~1)
        if lo >= hi:
            lo, hi = 0, 0
        for dy in range(2):
            y = 2 * y2 + dy
            n0 = (noise_off + y * ROW_STRIDE) % NOISE_LEN
            nz = noise[n0 : n0 + 3 * W]
            row = y * W
            nzy = ny[n0 : n0 + W]
            _screen_noise(buf[row : row + lo], syuv[row : row + lo], nzy[:lo], amp)
            _screen_noise(buf[row + hi : row + W], syuv[row + hi : row + W], nzy[hi:W], amp)
            if want_alpha:
                alpha[y, :lo] = _ZERO
                alpha[y, hi:] = _ZERO
            if hi > lo:
                _layers(y, lo, hi, body, by, bx, bw, bext, head, hy, hx, hw, hext, acc, hv)
                t = tmp[dy, : 3 * (hi - lo)]
                _over_screen(
                    acc[4 * lo : 4 * hi], screen[y, 3 * lo : 3 * hi], nz[3 * lo : 3 * hi], amp,
                    t, alpha[y, lo:hi] if want_alpha else alpha[0, :0], want_alpha,
                )  # fmt: skip
                ys = buf[row + lo : row + hi]
                for j in range(hi - lo):
                    ys[j] = np.uint8(
                        np.float32(16.5) + _YR * t[3 * j] + _YG * t[3 * j + 1] + _YB * t[3 * j + 2]
                    )
        c0 = (noise_off + y2 * ROW_STRIDE + 12345) % NOISE_LEN
        nz = nc[c0 : c0 + W]
        crow = y2 * cw
        clo, chi = lo // 2, hi // 2
        for base, k in ((uo, 0), (vo, cw)):
            a, b = base + crow, base + crow + cw
            _screen_noise(buf[a : a + clo], syuv[a : a + clo], nz[k : k + clo], amp)
            _screen_noise(buf[a + chi : b], syuv[a + chi : b], nz[k + chi : k + cw], amp)
        if chi > clo:
            t0, t1 = tmp[0], tmp[1]
            us = buf[uo + crow + clo : uo + crow + chi]
            vs = buf[vo + crow + clo : vo + crow + chi]
            for j in range(chi - clo):
                i = 6 * j
                r = t0[i] + t0[i + 3] + t1[i] + t1[i + 3]
                g = t0[i + 1] + t0[i + 4] + t1[i + 1] + t1[i + 4]
                b = t0[i + 2] + t0[i + 5] + t1[i + 2] + t1[i + 5]
                u = np.float32(128.5) + _UR * r + _UG * g + _UB * b
                v = np.float32(128.5) + _VR * r + _VG * g + _VB * b
                us[j] = np.uint8(min(max(u, _ZERO), _MAX))
                vs[j] = np.uint8(min(max(v, _ZERO), _MAX))


@njit(cache=True, nogil=True)
def render_fg(body, by, bx, bw, bext, head, hy, hx, hw, hext, fg, alpha, acc, hv):
    """The layers alone: premultiplied float32 RGB ``fg`` (H, W, 3) and ``alpha`` (H, W)."""
    H, W = alpha.shape[0], alpha.shape[1]
    for y in range(H):
        _layers(y, 0, W, body, by, bx, bw, bext, head, hy, hx, hw, hext, acc, hv)
        for x in range(W):
            for c in range(3):
                fg[y, x, c] = acc[4 * x + c]
            alpha[y, x] = acc[4 * x + 3]


@njit(cache=True, nogil=True)
def rgb_to_i420(rgb, buf):
    """(H, W, 3) uint8 RGB -> flat I420 (BT.601 limited range), 2x2 chroma averages."""
    H, W = rgb.shape[0], rgb.shape[1]
    cw = W // 2
    uo = W * H
    vo = uo + cw * (H // 2)
    for y in range(H):
        for x in range(W):
            buf[y * W + x] = np.uint8(
                np.float32(16.5) + _YR * rgb[y, x, 0] + _YG * rgb[y, x, 1] + _YB * rgb[y, x, 2]
            )
    for y2 in range(H // 2):
        for x2 in range(cw):
            r = _ZERO
            g = _ZERO
            b = _ZERO
            for dy in range(2):
                for dx in range(2):
                    r += rgb[2 * y2 + dy, 2 * x2 + dx, 0]
                    g += rgb[2 * y2 + dy, 2 * x2 + dx, 1]
                    b += rgb[2 * y2 + dy, 2 * x2 + dx, 2]
            u = np.float32(128.5) + _UR * r + _UG * g + _UB * b
            v = np.float32(128.5) + _VR * r + _VG * g + _VB * b
            buf[uo + y2 * cw + x2] = np.uint8(min(max(u, _ZERO), _MAX))
            buf[vo + y2 * cw + x2] = np.uint8(min(max(v, _ZERO), _MAX))
