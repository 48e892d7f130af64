"""Numba kernels for keying and compositing.

Contract: callers (the typed wrappers in this package) validate shapes, dtypes and
ranges and allocate every buffer. Kernels do no checks, no allocation of per-pixel
arrays and no I/O; each is one pass over its output. ``*_rows`` kernels take a row
range so that a serial driver and a ``prange`` driver share one body.

Kernels that divide use ``error_model="numpy"`` (no zero check per division), so their
loops vectorise; divisors are kept away from zero by the callers' floors.

Units: pixels are uint8; colour differences are in 8-bit RGB units; alpha is float in
[0, 1] inside kernels and uint8 (255 = avatar) at the edges.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# --------------------------------------------------------------------------- argument groups
# Kernels take these small typed tuples instead of long positional lists (numba compiles
# NamedTuples as structs), so a misplaced argument is a type error, not a wrong picture.


#: A scalar field of a kernel argument group: a Python float or a numpy float32 (what the
#: kernels are compiled for; a float64 would make numba compile another specialisation).
Real = float | np.floating[Any]


class Planes(NamedTuple):
    """The planes of an I420 frame, or a plate of per-chroma-sample Y, U, V values."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


class RgbPlate(NamedTuple):
    """The clean plate's colour at chroma resolution: screen R, G, B (float32)."""

    r: np.ndarray
    g: np.ndarray
    b: np.ndarray


class Matte(NamedTuple):
    """What the key needs at chroma resolution: the clean screen's and the local
    foreground's centred chroma (float32 planes), the noise floor ``k2`` (squared chroma
    units: alpha is 0 until the pull away from the screen exceeds sqrt(k2)) and ``min_n2``,
    the least squared screen-to-foreground distance the division uses."""

    su: np.ndarray
    sv: np.ndarray
    fu: np.ndarray
    fv: np.ndarray
    k2: Real
    min_n2: Real
    #: a pixel further than sqrt(solid2) from the screen and off the screen-foreground
    #: line is taken for a different solid colour (a teal shirt or grey hair beside skin)
    #: by a share that grows with the squared distance off the line, to all of it at
    #: sqrt(off2) x |S - F| (``_off_line_share``)
    solid2: Real
    off2: Real
    #: written by ``key_lowres``: the solved mix before the clip (1 for other solid colours),
    #: the share of the screen that the colour unmixing takes out
    lin: np.ndarray


class KeyAxis(NamedTuple):
    """Colour difference from centred chroma: min(c1u du + c1v dv, c2u du + c2v dv).

    (c1u, c1v) and (c2u, c2v) give the key primary minus each other primary.
    """

    c1u: Real
    c1v: Real
    c2u: Real
    c2v: Real


class Primary(NamedTuple):
    """The key primary of an RGB screen as a one-hot float vector (branch-free selects)."""

    e0: Real
    e1: Real
    e2: Real


class Clip(NamedTuple):
    """Raw key -> alpha: ``lo`` (the black clip point) maps to 0, and the slope is
    ``inv_rng`` = 1 / (white - black), so the white clip point maps to 1."""

    lo: Real
    inv_rng: Real


class Temporal(NamedTuple):
    """Pull towards last frame's alpha by ``k``, none for changes beyond 1 / ``inv_threshold``.

    ``prev`` holds last frame's alpha and is updated in place; it is read only when
    ``have_prev``. ``k == 0`` turns the filter off.
    """

    k: Real
    inv_threshold: Real
    prev: np.ndarray
    have_prev: bool


class RgbDespill(NamedTuple):
    """Spill removal strength and the share of the removed light put back as grey."""

    amount: Real
    luma_w: Real


class YuvDespill(NamedTuple):
    """Spill removal strength and the U, V, Y step per unit of removed colour difference."""

    amount: Real
    su: Real
    sv: Real
    sy: Real


class Tables(NamedTuple):
    """Bilinear lookup from full-resolution rows/columns into a small grid: the two
    source indices and the weight of the second, per output row (y*) and column (x*)."""

    y0: np.ndarray
    y1: np.ndarray
    wy: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    wx: np.ndarray


class Codec(NamedTuple):
    """The guided model's weights on block-codec streams (``guided_coeffs``): the clean
    plate's luma at chroma resolution, how many samples of it (alpha 0) each window holds,
    the extra weight of samples keyed near 0 or 1, the fit measure (float64[2]) and the
    alpha it is measured on (the chroma key's, before ``luma_key``), and each cell's
    motion weight (``motion_soften``'s ``cells``, float32) times ``moving_eps``: the
    regularisation it adds (luma levels²)."""

    screen_y: np.ndarray
    screen_w: Real
    plateau: Real
    fit: np.ndarray
    fit_alpha: np.ndarray
    moving: np.ndarray
    moving_eps: Real


class LumaKey(NamedTuple):
    """``luma_key``'s settings: the weight at full trust (the codec level), the luma
    contrast between the local foreground and the screen where trust starts (``c0``,
    levels) and 1 / the span over which it grows to full (``inv_span``), how many standard
    deviations of the foreground's own luma count against the contrast (``texture``), the
    reach of the foreground's window and of its fallback (cells of ``FG_CELL`` chroma
    samples), and the map of the luma key's alpha onto the chroma key's scale (``off +
    scale * alpha``)."""

    weight: Real
    c0: Real
    inv_span: Real
    texture: Real
    reach: int
    far: int
    off: Real
    scale: Real


class Guide(NamedTuple):
    """Luma-guided edge model at chroma resolution: alpha = ca * Y + cb, and the block
    state (0 all screen, 1 all avatar, 2 edge) of each chroma sample's neighbourhood."""

    ca: np.ndarray
    cb: np.ndarray
    blk: np.ndarray


# --------------------------------------------------------------------------- helpers


@njit(cache=True, nogil=True, inline="always")
def _u8(x):
    """Round a float to the nearest uint8 value, clamped."""
    if x <= 0.0:
        return np.uint8(0)
    if x >= 255.0:
        return np.uint8(255)
    return np.uint8(int(x + 0.5))


@njit(cache=True, nogil=True, inline="always")
def _clamp01(x):
    if x < 0.0:
        return 0.0
    if x > 1.0:
        return 1.0
    return x


@njit(cache=True, nogil=True, inline="always")
def _clip(a, clip):
    """Raw key -> alpha in [0, 1] (see ``Clip``)."""
    lo, inv_rng = clip
    return min(max((a - lo) * inv_rng, 0.0), 1.0)


@njit(cache=True, nogil=True, inline="always")
def _cdiff(du, dv, c1u, c1v, c2u, c2v):
    """Colour difference (key primary minus the larger other primary) from centred chroma."""
    d1 = c1u * du + c1v * dv
    d2 = c2u * du + c2v * dv
    return d1 if d1 < d2 else d2


@njit(cache=True, nogil=True, inline="always")
def _excess(c0, c1, c2, e0, e1, e2):
    """How far the key primary of an RGB colour exceeds the larger of the other two;
    ``e0, e1, e2`` (Primary) weigh the key primary 1 and the others 0, which drops it out
    of the max without a branch."""
    big = np.float32(1e6)
    return c0 * e0 + c1 * e1 + c2 * e2 - max(c0 - big * e0, max(c1 - big * e1, c2 - big * e2))


@njit(cache=True, nogil=True, inline="always")
def _rgb_of_chroma(pu, pv):
    """What centred chroma ``pu``, ``pv`` add to each of R, G, B over the luma (BT.601,
    limited range; float32)."""
    k = np.float32(1.164383)
    return (
        k * (np.float32(1.596027) * pv),
        k * (np.float32(-0.391762) * pu - np.float32(0.812968) * pv),
        k * (np.float32(2.017232) * pu),
    )


# --------------------------------------------------------------------------- conversions


@njit(cache=True, nogil=True, inline="always")
def _block_rgb(rgb, i0, i1, j0, j1):
    """Sums of R, G, B over the 2x2 block (rows i0, i1; columns j0, j1), as int32."""
    r = np.int32(rgb[i0, j0, 0]) + rgb[i0, j1, 0] + rgb[i1, j0, 0] + rgb[i1, j1, 0]
    g = np.int32(rgb[i0, j0, 1]) + rgb[i0, j1, 1] + rgb[i1, j0, 1] + rgb[i1, j1, 1]
    b = np.int32(rgb[i0, j0, 2]) + rgb[i0, j1, 2] + rgb[i1, j0, 2] + rgb[i1, j1, 2]
    return r, g, b


@njit(cache=True, nogil=True, inline="always")
def _luma(rgb, i, j):
    """BT.601 limited-range luma of pixel (i, j) of an (H, W, 3) uint8 RGB frame (int32)."""
    r = np.int32(rgb[i, j, 0])
    g = np.int32(rgb[i, j, 1])
    b = np.int32(rgb[i, j, 2])
    return ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16


@njit(cache=True, nogil=True)
def rgb_to_i420(rgb, y, u, v):
    """BT.601 limited range; chroma from the mean RGB of each 2x2 block."""
    h, w = y.shape
    ch, cw = u.shape
    for i in range(h):
        for j in range(w):
            y[i, j] = np.uint8(_luma(rgb, i, j))
    for ci in range(ch):
        i0 = 2 * ci
        i1 = min(i0 + 1, h - 1)
        for cj in range(cw):
            r, g, b = _block_rgb(rgb, i0, i1, 2 * cj, min(2 * cj + 1, w - 1))
            u[ci, cj] = np.uint8(((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128)
            v[ci, cj] = np.uint8(((112 * r - 94 * g - 18 * b + 512) >> 10) + 128)


@njit(cache=True, nogil=True, inline="always")
def _bt601_rgb(y, du, dv):
    """R, G, B (unclamped, float64) of luma ``y`` and centred chroma ``du``, ``dv``
    (BT.601, limited range)."""
    c = 1.164383 * (y - 16.0)
    return c + 1.596027 * dv, c - 0.391762 * du - 0.812968 * dv, c + 2.017232 * du


@njit(cache=True, nogil=True)
def i420_to_rgb(y, u, v, out):
    """BT.601 limited range to RGB, chroma upsampled bilinearly (centred siting)."""
    h, w = y.shape
    ch, cw = u.shape
    for i in range(h):
        ci = i >> 1
        ni = max(ci - 1, 0) if (i & 1) == 0 else min(ci + 1, ch - 1)
        for j in range(w):
            cj = j >> 1
            nj = max(cj - 1, 0) if (j & 1) == 0 else min(cj + 1, cw - 1)
            uu = (
                9.0 * u[ci, cj] + 3.0 * u[ni, cj] + 3.0 * u[ci, nj] + 1.0 * u[ni, nj]
            ) * 0.0625 - 128.0
            vv = (
                9.0 * v[ci, cj] + 3.0 * v[ni, cj] + 3.0 * v[ci, nj] + 1.0 * v[ni, nj]
            ) * 0.0625 - 128.0
            r, g, b = _bt601_rgb(np.float64(y[i, j]), uu, vv)
            out[i, j, 0] = _u8(r)
            out[i, j, 1] = _u8(g)
            out[i, j, 2] = _u8(b)


@njit(cache=True, nogil=True)
def blend_u8(a, b, w256, out):
    """out = a + (b - a) * w256 / 256 for 2-D uint8 planes."""
    h, wd = a.shape
    iw = 256 - w256
    for i in range(h):
        for j in range(wd):
            out[i, j] = np.uint8((np.int32(a[i, j]) * iw + np.int32(b[i, j]) * w256 + 128) >> 8)


# --------------------------------------------------------------------------- chroma key
# The key is the compositing equation solved on chroma: a pixel C that mixes the local
# foreground F and the clean screen S as C = a F + (1 - a) S has
# a = ((S - C) . (S - F)) / |S - F|^2, with S from the clean plate (per region, refreshed
# every few frames) and F from the foreground plate (per region, every frame). Both live
# at chroma resolution; U, V below are centred (0 = grey).

# BT.601 limited range: centred U, V from RGB (the weights of ``rgb_to_i420``'s integers)
_UR = np.float32(-38.0 / 256.0)
_UG = np.float32(-74.0 / 256.0)
_UB = np.float32(112.0 / 256.0)
_VR = np.float32(112.0 / 256.0)
_VG = np.float32(-94.0 / 256.0)
_VB = np.float32(-18.0 / 256.0)
#: the foreground plate's cells are FG_CELL x FG_CELL chroma samples
FG_CELL = 4
#: ``guided_coeffs`` measures how well luma explains alpha on windows whose alpha and luma
#: vary by more than these variances (alpha units, luma levels squared).
FIT_VAR_ALPHA = 0.02
FIT_VAR_LUMA = 25.0
#: the unmixed foreground may sit this far (times the screen's colour difference) below
#: the local foreground's colour difference before it is pulled back (no magenta fringes)
_UNMIX_SLACK = 0.2
#: the most screen light (share of the screen colour) that solid pixels trade for background
_SPILL_MAX = 0.35
#: ... and at most this many times the key colour it carries beyond the avatar's own
_SPILL_GAIN = 4.0


_ONES8 = np.uint64(0x0101010101010101)


def _row_pointer(context, builder, arr_type, arr, i, i_type, j, j_type):
    """LLVM pointer to byte ``j`` of row ``i`` of a 2-D uint8 array (row stride from the
    array, so any C-contiguous or row-sliced layout)."""
    ary = context.make_array(arr_type)(context, builder, arr)
    i = context.cast(builder, i, i_type, types.intp)
    j = context.cast(builder, j, j_type, types.intp)
    row_stride = cgutils.unpack_tuple(builder, ary.strides, 2)[0]
    return builder.gep(ary.data, [builder.add(builder.mul(i, row_stride), j)])


@intrinsic
def _load_u64(typingctx, arr, i, j):
    """The 8 bytes of row ``i`` of a 2-D uint8 array from column ``j`` as one uint64 (any
    alignment; the caller keeps ``j + 8`` within the row)."""
    sig = types.uint64(arr, i, j)

    def codegen(context, builder, sig, args):
        ptr = _row_pointer(
            context, builder, sig.args[0], args[0], args[1], sig.args[1], args[2], sig.args[2]
        )
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return sig, codegen


@intrinsic
def _memcpy_rows(typingctx, dst, di, src, si, x0, x1):
    """``dst[di, x0:x1] = src[si, x0:x1]`` as one libc ``memcpy`` (2-D uint8 arrays)."""
    sig = types.void(dst, di, src, si, x0, x1)

    def codegen(context, builder, sig, args):
        d, di, s, si, a, b = args
        ta = sig.args
        cgutils.raw_memcpy(
            builder,
            _row_pointer(context, builder, ta[0], d, di, ta[1], a, ta[4]),
            _row_pointer(context, builder, ta[2], s, si, ta[3], a, ta[4]),
            builder.sub(
                context.cast(builder, b, ta[5], types.intp),
                context.cast(builder, a, ta[4], types.intp),
            ),
            1,
        )
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _memset_row(typingctx, dst, di, x0, x1, value):
    """``dst[di, x0:x1] = value`` as one libc ``memset`` (a 2-D uint8 array)."""
    sig = types.void(dst, di, x0, x1, value)

    def codegen(context, builder, sig, args):
        d, di, a, b, val = args
        ta = sig.args
        byte = builder.trunc(context.cast(builder, val, ta[4], types.intp), ir.IntType(8))
        cgutils.memset(
            builder,
            _row_pointer(context, builder, ta[0], d, di, ta[1], a, ta[2]),
            builder.sub(
                context.cast(builder, b, ta[3], types.intp),
                context.cast(builder, a, ta[2], types.intp),
            ),
            byte,
        )
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _load8(a, i, j):
    """``_load_u64``: 8 columns of row ``i`` of ``a`` from ``j`` as one uint64."""
    return _load_u64(a, i, j)  # type: ignore[call-arg]  # numba fills typingctx


# Row helpers take the 2-D array and a row index: a row view (``a[i]``, a slice, ``.view``)
# made inside a loop costs numba reference counting each time, ~30 ns, more than the scan.


@njit(cache=True, nogil=True, inline="always")
def _run_end(a, i, j, st):
    """First column at or after ``j`` where row ``i`` of the uint8 ``a`` differs from
    ``st``: 8 columns are compared at once (runs of screen and solid avatar are long)."""
    n = a.shape[1]
    pat = np.uint64(st) * _ONES8
    while j + 8 <= n and _load8(a, i, j) == pat:
        j += 8
    while j < n and a[i, j] == st:
        j += 1
    return j


@njit(cache=True, nogil=True, inline="always")
def _copy(dst, di, src, si, x0, x1):
    """``dst[di, x0:x1] = src[si, x0:x1]`` for 2-D uint8 arrays.

    Numba's slice assignment, and a plain byte loop inside the compositing loops, both go
    byte by byte (~1 ms per 720p frame of copies); libc's ``memcpy`` moves a run in vector
    words (the screen runs of a 720p frame: 0.35 ms in 8-byte words, ~0.05 ms here)."""
    if x1 > x0:
        _memcpy_rows(dst, di, src, si, x0, x1)  # type: ignore[call-arg]  # numba fills typingctx


@njit(cache=True, nogil=True, inline="always")
def _fill(dst, di, x0, x1, value):
    """``dst[di, x0:x1] = value`` for a 2-D uint8 array (libc ``memset``)."""
    if x1 > x0:
        _memset_row(dst, di, x0, x1, value)  # type: ignore[call-arg]  # numba fills typingctx


@njit(cache=True, nogil=True, inline="always")
def _next_edge(a, i, j):
    """First column at or after ``j`` where row ``i`` of the category array ``a`` holds 2
    (edge); 8 columns without one are skipped at once."""
    n = a.shape[1]
    mask = np.uint64(2) * _ONES8
    while j + 8 <= n and (_load8(a, i, j) & mask) == 0:
        j += 8
    while j < n and a[i, j] != 2:
        j += 1
    return j


@njit(cache=True, nogil=True)
def rgb_half(rgb, y, u, v):
    """Luma, U and V of each 2x2 block's mean RGB (BT.601 limited), at chroma resolution.

    The two rows of a block are summed first, whole rows at once (a loop LLVM
    vectorises), then each block's pair of columns."""
    h, w = rgb.shape[0], rgb.shape[1]
    ch, cw = u.shape
    acc = np.empty(3 * w + 3, np.int32)
    for ci in range(ch):
        i0 = 2 * ci
        i1 = min(i0 + 1, h - 1)
        top = rgb[i0].ravel()
        bot = rgb[i1].ravel()
        for x in range(3 * w):
            acc[x] = np.int32(top[x]) + np.int32(bot[x])
        if w & 1:  # an odd last column pairs with itself
            for c in range(3):
                acc[3 * w + c] = acc[3 * w - 3 + c]
        for cj in range(cw):
            x = 6 * cj
            r = acc[x] + acc[x + 3]
            g = acc[x + 1] + acc[x + 4]
            b = acc[x + 2] + acc[x + 5]
            y[ci, cj] = np.uint8(((66 * r + 129 * g + 25 * b + 512) >> 10) + 16)
            u[ci, cj] = np.uint8(((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128)
            v[ci, cj] = np.uint8(((112 * r - 94 * g - 18 * b + 512) >> 10) + 128)


@njit(cache=True, nogil=True, error_model="numpy")
def key_lowres(u, v, matte, weak, full, temporal, out, cat):
    """Alpha at chroma resolution from the compositing equation, with the temporal filter.

    ``matte`` (Matte) holds the screen and foreground chroma planes and the noise floor:
    alpha is 0 where the pull away from the screen is within the noise. ``temporal``
    (Temporal, float32 ``prev``) pulls alpha towards last frame's value, less the larger
    the change. ``cat`` gets 0 (screen), 1 (alpha 1) or 2 (anything else, including
    samples whose pull exceeds ``weak`` times the noise floor: detail that may show at
    full resolution). Alpha at or above ``full`` (the clip point of alpha 1) becomes 1.
    """
    ch, cw = u.shape
    f128 = np.float32(128.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    wk2 = np.float32(weak * weak)
    full32 = np.float32(full)
    su_p, sv_p, fu_p, fv_p, k2, mn2, solid2, off2, lin = matte
    off_inv = one / off2
    tk, tinv, prev, have_prev = temporal
    for i in range(ch):
        for j in range(cw):  # branch-free, so it vectorises
            su = su_p[i, j]
            sv = sv_p[i, j]
            dx = su - fu_p[i, j]
            dy = sv - fv_p[i, j]
            n2 = max(dx * dx + dy * dy, mn2)
            eu = su - (np.float32(u[i, j]) - f128)
            ev = sv - (np.float32(v[i, j]) - f128)
            num = eu * dx + ev * dy
            thr = k2 * n2
            inv = one / n2
            a = num * inv if (num > zero) & (num * num > thr) else zero
            a = min(a, one)
            a += _off_line_share(eu, ev, inv, num, solid2, off_inv) * (one - a)
            lin[i, j] = a
            out[i, j] = one if a >= full32 else a
            cat[i, j] = np.uint8((num > zero) & (num * num > wk2 * thr)) * np.uint8(2)
        if tk > 0.0:
            for j in range(cw):
                a = out[i, j]
                if have_prev:
                    p = prev[i, j]
                    k = tk * (one - abs(a - p) * tinv)
                    if k > zero:
                        a += k * (p - a)
                    if a < np.float32(0.002):
                        a = zero
                    elif a > np.float32(0.998):
                        a = one
                    out[i, j] = a
                prev[i, j] = a
        for j in range(cw):
            a = out[i, j]
            c = cat[i, j]
            cat[i, j] = 1 if a == one else (c if a == zero else 2)


@njit(cache=True, nogil=True)
def gamut_floor(cat, alpha, lin, ylo, u, v, screen, margin, full):
    """Partial samples (``cat`` 2) get at least ``_gamut_floor`` of their colour (``ylo``:
    luma at chroma resolution) against the clean plate's (``screen``, RgbPlate), forgiving
    ``margin`` levels: in ``lin`` (the solved mix), and in ``alpha``, where a floor at or
    above ``full`` (the clip point of alpha 1) makes the sample solid (``cat`` 1). Screen
    samples are left alone: a shadow on the screen is darker than the plate but no mix."""
    ch, cw = cat.shape
    one = np.float32(1.0)
    full32 = np.float32(full)
    for i in range(ch):
        j = -1
        while True:
            j = _next_edge(cat, i, j + 1)
            if j >= cw:
                break
            f = _gamut_floor(
                ylo[i, j], u[i, j], v[i, j], screen.r[i, j], screen.g[i, j], screen.b[i, j], margin
            )
            if f > lin[i, j]:
                lin[i, j] = f
            if f >= full32:
                alpha[i, j] = one
                cat[i, j] = 1
            elif f > alpha[i, j]:
                alpha[i, j] = f


@njit(cache=True, nogil=True, inline="always")
def _gamut_floor(y, u, v, sr, sg, sb, m):
    """The least alpha that leaves the unmixed foreground ``(I - (1 - a) S) / a`` a colour:
    in each channel ``a >= (S - I) / S`` (the foreground no darker than black) and
    ``a >= (I - S) / (255 - S)`` (no brighter than white). Black hair beside skin on a blue
    screen lies on the screen-to-skin line in chroma, where the mix reads 0.7-0.8, but its
    blue is far below the screen's: no mix of the screen with any colour is that dark
    there at less than 0.9. Only channels with 100 levels of room count, and ``m`` levels
    of each difference are forgiven (noise)."""
    ir, ig, ib = _bt601_rgb(np.float64(y), np.float64(u) - 128.0, np.float64(v) - 128.0)
    return max(_room(ir, sr, m), _room(ig, sg, m), _room(ib, sb, m))


@njit(cache=True, nogil=True, inline="always")
def _room(i, s, m):
    """``_gamut_floor`` of one channel: pixel ``i``, screen ``s``, margin ``m``."""
    up = 255.0 - s
    lo = (s - i - m) / s if s >= 100.0 else 0.0
    hi = (i - s - m) / up if up >= 100.0 else 0.0
    return max(lo, hi, 0.0)


@njit(cache=True, nogil=True, inline="always")
def _off_line_share(eu, ev, inv, num, solid2, off_inv):
    """How surely a pixel is another solid colour than the local foreground plate's, 0-1.

    (eu, ev) is its chroma's offset from the screen, ``inv`` 1 / the squared
    screen-to-plate distance, ``num`` the offset's projection on that line times its
    length. 0 within sqrt(``solid2``) of the screen; beyond, the squared distance off the
    line in units of |S - F|, times ``off_inv``, up to 1. A mix of the screen and the plate's colour lies on
    the line; grey hair beside skin on a green screen lies a quarter of |S - F| off it,
    where the solved mix along the line would make it 0.6 opaque. A ramp, not a switch, so
    that a colour near a threshold does not flicker between solid and mixed."""
    d2 = eu * eu + ev * ev
    r2 = (d2 - num * num * inv) * inv
    share = min(r2 * off_inv, np.float32(1.0))
    return share if d2 > solid2 else np.float32(0.0)


@njit(cache=True, nogil=True, inline="always")
def _d2(u, v, cu, cv):
    """Squared chroma distance of (u, v) from (cu, cv)."""
    du = np.float32(u) - cu
    dv = np.float32(v) - cv
    return du * du + dv * dv


@njit(cache=True, nogil=True, inline="always")
def _flat(u, v, i, j, span, flat2):
    """True when the four chroma samples ``span`` away from (i, j) (clamped at the borders)
    all lie within sqrt(flat2) of its own chroma: a flat patch, not an edge ramp."""
    ch, cw = u.shape
    cu = np.float32(u[i, j])
    cv = np.float32(v[i, j])
    up, down = max(i - span, 0), min(i + span, ch - 1)
    left, right = max(j - span, 0), min(j + span, cw - 1)
    return (
        _d2(u[up, j], v[up, j], cu, cv) <= flat2
        and _d2(u[down, j], v[down, j], cu, cv) <= flat2
        and _d2(u[i, left], v[i, left], cu, cv) <= flat2
        and _d2(u[i, right], v[i, right], cu, cv) <= flat2
    )


@njit(cache=True, nogil=True)
def flat_solid(u, v, su_p, sv_p, thr2, flat2, alpha, lin, cat, prev, write_prev):
    """Flat patches are solid: a partial chroma sample (``cat`` 2) further than sqrt(thr2)
    from the screen whose four neighbours all lie within sqrt(flat2) of its own chroma gets
    alpha 1 (``lin`` 1, ``cat`` 1, and, when ``write_prev`` (the temporal filter is on),
    ``prev`` 1). For block-codec streams, whose flat areas near the key hue (a green shirt, a
    navy one on blue) can solve to a mix against a foreground plate that averaged in skin or
    found nothing; an edge ramp, even a codec-blurred one, changes by more than ``flat2``
    from one sample to the next. Screen and solid samples are passed over 8 at a time."""
    ch, cw = u.shape
    one = np.float32(1.0)
    f128 = np.float32(128.0)
    for i in range(ch):
        j = -1
        while True:
            j = _next_edge(cat, i, j + 1)
            if j >= cw:
                break
            cu = np.float32(u[i, j])
            cv = np.float32(v[i, j])
            du = su_p[i, j] - (cu - f128)
            dv = sv_p[i, j] - (cv - f128)
            if du * du + dv * dv <= thr2:
                continue
            if _flat(u, v, i, j, 1, flat2):
                alpha[i, j] = one
                lin[i, j] = one
                cat[i, j] = 1
                if write_prev:
                    prev[i, j] = one


class Ramp(NamedTuple):
    """``linear_ramps``' settings: a sample is partial between ``eps`` and 1 - ``eps``; a
    run of three is linear when its curvature |l - 2c + r| is at most ``curve`` x its rise
    |r - l|, and wide rather than a sharp edge's when that rise is at least ``rise_min``.
    ``lo`` and ``span`` are the clip points' black and white - black. Walking down the
    ramp, each step must fall by its slope within ``step_tol`` x the slope plus ``eps``,
    and the screen be reached within ``reach`` samples. ``share``: how far a marked sample
    moves from the clipped alpha to the linear one."""

    eps: Real
    curve: Real
    rise_min: Real
    lo: Real
    span: Real
    step_tol: Real
    reach: int
    share: Real


class RgbRamp(NamedTuple):
    """The RGB path's ``linear_ramps`` result: its uint8 mark plane at chroma resolution
    and the share of the way from the clipped to the linear alpha (``Ramp.share``)."""

    plane: np.ndarray
    share: Real


@njit(cache=True, nogil=True, inline="always")
def _linear_run(a, c, b, eps, curve, rise_min):
    """True when a, c, b (unclipped keys of three samples in a row or column) are all
    partial and rise or fall evenly: a ramp wider than three samples (6 px)."""
    hi = np.float32(1.0) - eps
    if not (eps < a < hi and eps < c < hi and eps < b < hi):
        return False
    if not ((a < c < b) or (a > c > b)):
        return False
    rise = abs(b - a)
    return rise >= rise_min and abs(a - np.float32(2.0) * c + b) <= curve * rise


@njit(cache=True, nogil=True, inline="always")
def _reaches_screen(lin, i, j, di, dj, slope, rp):
    """True when walking from sample (i, j) by (di, dj) (down the ramp) falls by ``slope``
    a sample, evenly, until it meets the screen (a key within ``rp.eps``) within
    ``rp.reach`` samples. A solid rim that spill or shading left below 1 also forms a
    short even run, but it ends in the sharp edge's jump, not in an even run to the
    screen."""
    ch, cw = lin.shape
    eps = rp.eps
    tol = rp.step_tol * slope + eps
    prev = lin[i, j]
    for _ in range(rp.reach):
        i += di
        j += dj
        if i < 0 or i >= ch or j < 0 or j >= cw:
            return False
        cur = lin[i, j]
        if cur <= eps:
            return prev <= slope + tol
        if abs(prev - cur - slope) > tol:
            return False
        prev = cur
    return False


@njit(cache=True, nogil=True, inline="always")
def _mark(ramp, marks, i, j):
    """Sets ``ramp`` at (i, j) and lists it in ``marks`` (count in ``marks[0]``)."""
    if ramp[i, j] == 0:
        ramp[i, j] = 1
        n = marks[0] + 1
        marks[n] = i * ramp.shape[1] + j
        marks[0] = n


@njit(cache=True, nogil=True)
def unmark(ramp, marks):
    """Clears the samples ``marks`` lists from ``ramp`` (all 0 after) and empties it."""
    cw = ramp.shape[1]
    for k in range(1, marks[0] + 1):
        ramp[marks[k] // cw, marks[k] % cw] = 0
    marks[0] = 0


@njit(cache=True, nogil=True, inline="always")
def _mark_up(lin, ramp, marks, i, j, di, dj, slope, rp):
    """Marks the samples from (i, j) on by (di, dj) (up the ramp) while they stay partial
    and keep rising by ``slope`` (within ``rp.step_tol``): a ramp's top, keyed solid by
    the clip, is no centre of its own."""
    ch, cw = lin.shape
    hi = np.float32(1.0) - rp.eps
    tol = rp.step_tol * slope + rp.eps
    prev = lin[i, j]
    for _ in range(rp.reach):
        i += di
        j += dj
        if i < 0 or i >= ch or j < 0 or j >= cw:
            return
        cur = lin[i, j]
        if cur >= hi or abs(cur - prev - slope) > tol:
            return
        _mark(ramp, marks, i, j)
        prev = cur


@njit(cache=True, nogil=True)
def linear_ramps(lin, alpha, cat, ramp, marks, rp):
    """Clean footage: samples on a wide, even ramp into the screen keep most of their
    linear alpha.

    The clip points steepen every edge: a solid rim lit by the screen's spill, or shaded,
    solves to a mix below 1, and so does each sample of a sharp edge's anti-aliasing. A
    ramp several samples wide with an even slope down to the screen is neither (motion
    blur, a soft edge): there the compositing equation's alpha is the truth. An edge sample
    (``cat`` 2) whose row or column neighbours form a ``_linear_run`` with it, and whose
    ramp falls evenly to the screen (``_reaches_screen``; a rim ends in its sharp edge's
    jump instead), is marked with the even run above it (``_mark_up``: the ramp's top,
    which the clip keyed solid). Marked samples get ``alpha`` = ``lin`` moved ``rp.share``
    of the way to lo + span x ``lin`` (which the clip maps back to ``lin``), ``cat`` 2 and
    ``ramp`` 1 (uint8, for the RGB path's per-pixel key, all 0 elsewhere). ``marks``
    (int32, 1 + the plane's size) lists them, so the next call clears only those."""
    eps, curve, rise_min, lo, span, _tol, _reach, share = rp
    ch, cw = lin.shape
    hi = np.float32(1.0) - eps
    unmark(ramp, marks)
    # centres are edge samples (``cat`` 2, found 8 at a time); a sample keyed solid by the
    # clip is no centre, but is marked as a ramp's top by ``_mark_up``
    for i in range(1, ch - 1):
        j = _next_edge(cat, i, 1)
        while j < cw - 1:
            c = lin[i, j]
            if eps < c < hi:
                for di, dj in ((0, 1), (1, 0)):  # along the row, then the column
                    a = lin[i - di, j - dj]
                    b = lin[i + di, j + dj]
                    if not _linear_run(a, c, b, eps, curve, rise_min):
                        continue
                    down = -1 if b > a else 1
                    slope = np.float32(0.5) * abs(b - a)
                    if _reaches_screen(lin, i, j, down * di, down * dj, slope, rp):
                        _mark(ramp, marks, i, j)
                        _mark_up(lin, ramp, marks, i, j, -down * di, -down * dj, slope, rp)
            j = _next_edge(cat, i, j + 1)
    for k in range(1, marks[0] + 1):
        i = marks[k] // cw
        j = marks[k] % cw
        a = lin[i, j]
        alpha[i, j] = a + share * (lo + span * a - a)
        cat[i, j] = 2


@njit(cache=True, nogil=True, inline="always")
def _block_dev(y, ya, yb, xa, w, ref):
    """The largest |luma - ``ref``| over the 2x2 luma block of rows ya, yb from column xa."""
    xb = min(xa + 1, w - 1)
    return max(
        abs(np.float32(y[ya, xa]) - ref),
        abs(np.float32(y[ya, xb]) - ref),
        abs(np.float32(y[yb, xa]) - ref),
        abs(np.float32(y[yb, xb]) - ref),
    )


@njit(cache=True, nogil=True, inline="always")
def _lone(cat, i, j, i0, i2, j0, j2):
    """True when sample (i, j) has only screen (``cat`` 0) in its 8-neighbourhood (rows
    i0, i2 and columns j0, j2, clamped at the borders). A row neighbour (most edges)
    decides it in two reads."""
    if (cat[i, j0] != 0 and j0 != j) or (cat[i, j2] != 0 and j2 != j):
        return False
    for jj in range(j0, j2 + 1):
        if (i0 != i and cat[i0, jj] != 0) or (i2 != i and cat[i2, jj] != 0):
            return False
    return True


@njit(cache=True, nogil=True)
def despeckle(cat, alpha):
    """Lone edge samples (category 2 with only screen around, 8-neighbourhood) are noise:
    they become screen (alpha 0). Strands and edges are connected, so they stay.

    Words of 8 samples without an edge sample are skipped at once; a sample with a row
    neighbour (most edges) is decided by those two reads."""
    ch, cw = cat.shape
    for i in range(ch):
        i0 = max(i - 1, 0)
        i2 = min(i + 1, ch - 1)
        j = -1
        while True:
            j = _next_edge(cat, i, j + 1)
            if j >= cw:
                break
            if _lone(cat, i, j, i0, i2, max(j - 1, 0), min(j + 1, cw - 1)):
                cat[i, j] = 0
                alpha[i, j] = 0.0


@njit(cache=True, nogil=True)
def fg_accumulate(u, v, su_p, sv_p, thr2, flat2, cell, step, sums, resid):
    """Foreground chroma per grid cell (cell in chroma samples), from confident samples,
    and the screen's residual noise against the plate.

    Samples on a lattice of ``step``. A sample counts as foreground when it and its four
    neighbours two samples away are further than sqrt(thr2) from the screen; all count
    alike, so a cell's estimate is its typical solid colour. (Weighting by the distance to
    the fourth power leaned it to the most saturated pixels: every other solid pixel then
    solved to a mix below 1, and the clip point had to be lowered to make it solid, which
    pushed real mixes up too.) With ``flat2`` >= 0 (clean footage) a sample also needs
    those four neighbours within sqrt(flat2) of its own chroma: inside a wide ramp into
    the screen the samples are mixes, and counting them pulled the plate towards the
    screen. sums[..., 0:2] add up U, V (centred), sums[..., 2] counts.
    Samples within sqrt(thr2) of the screen add their distance to resid[0] and 1 to
    resid[1]: what the codec's blocks, noise and the plate's misfit leave on the screen.
    """
    ch, cw = u.shape
    for i in range(0, ch, step):
        for j in range(0, cw, step):
            ok = True
            for ii, jj in ((i, j), (max(i - 2, 0), j), (min(i + 2, ch - 1), j),
                           (i, max(j - 2, 0)), (i, min(j + 2, cw - 1))):  # fmt: skip
                du = np.float64(su_p[ii, jj]) - (np.float64(u[ii, jj]) - 128.0)
                dv = np.float64(sv_p[ii, jj]) - (np.float64(v[ii, jj]) - 128.0)
                d2 = du * du + dv * dv
                if ii == i and jj == j and d2 <= thr2:
                    resid[0] += math.sqrt(d2)
                    resid[1] += 1.0
                if d2 <= thr2:
                    ok = False
                    break
            if ok and (flat2 < 0.0 or _flat(u, v, i, j, 2, flat2)):
                gi = i // cell
                gj = j // cell
                sums[gi, gj, 0] += np.float64(u[i, j]) - 128.0
                sums[gi, gj, 1] += np.float64(v[i, j]) - 128.0
                sums[gi, gj, 2] += 1.0


@njit(cache=True, nogil=True)
def fg_accumulate_flat(u, v, su_p, sv_p, thr2, flat2, cell, step, need, sums):
    """Second look for the foreground plate, only in the cells flagged in ``need`` (no
    solid sample within the box filter's reach): a sample counts when it is further than
    sqrt(thr2) from the screen (a lower bar than ``fg_accumulate``'s) and its four
    neighbours two samples away all lie within sqrt(flat2) of its own chroma. A flat patch
    of one colour is solid avatar even where a codec pulled its chroma towards the key (a
    green shirt on a green screen after VP8); a ramp into the screen is not flat, so edge
    mixes stay out. Adds to ``sums`` as ``fg_accumulate`` does."""
    ch, cw = u.shape
    for i in range(0, ch, step):
        gi = i // cell
        for j in range(0, cw, step):
            gj = j // cell
            if need[gi, gj] == 0:
                continue
            cu = np.float64(u[i, j]) - 128.0
            cv = np.float64(v[i, j]) - 128.0
            du = np.float64(su_p[i, j]) - cu
            dv = np.float64(sv_p[i, j]) - cv
            if du * du + dv * dv <= thr2:
                continue
            if _flat(u, v, i, j, 2, flat2):
                sums[gi, gj, 0] += cu
                sums[gi, gj, 1] += cv
                sums[gi, gj, 2] += 1.0


@njit(cache=True, nogil=True, error_model="numpy")
def fg_grid(sums, r, tmp, plate, fill, have):
    """Foreground chroma per cell into ``plate`` (gh, gw, 2): the weighted mean over
    (2r+1)^2 cells (a normalised box filter, which also reaches into cells without
    samples). Cells with none near take the mean of their filled neighbours (3x3), growing
    ``fill`` cells out (``grow``), so a finger or a wisp away from the body is solved
    against the avatar's colour beside it; grey (0, 0) beyond. ``have`` (uint8, (gh, gw))
    is scratch."""
    gh, gw = sums.shape[0], sums.shape[1]
    # the sums are whole numbers (chroma levels, counts), so any order of adding is exact:
    # each pass adds whole shifted rows (rows of U, V, count triples), which vectorises
    n = 3 * gw
    s = sums.reshape(gh, n)
    t = tmp.reshape(gh, n)
    for i in range(gh):
        for k in range(n):
            t[i, k] = s[i, k]
        for d in range(1, r + 1):
            for k in range(n - 3 * d):
                t[i, k] += s[i, k + 3 * d]
            for k in range(3 * d, n):
                t[i, k] += s[i, k - 3 * d]
    acc = np.empty(n)
    for i in range(gh):
        acc[:] = 0.0
        for ii in range(max(i - r, 0), min(i + r + 1, gh)):
            for k in range(n):
                acc[k] += t[ii, k]
        for j in range(gw):
            s2 = acc[3 * j + 2]
            ok = s2 > 0.0
            plate[i, j, 0] = acc[3 * j] / s2 if ok else 0.0
            plate[i, j, 1] = acc[3 * j + 1] / s2 if ok else 0.0
            have[i, j] = 1 if ok else 0
    grow(plate, have, 8, fill)


@njit(cache=True, nogil=True, inline="always")
def _neighbour(i, j, k, conn):
    """The k-th neighbour of cell (i, j): of 4 (up, down, left, right) or of 8 (row by
    row, the centre skipped)."""
    if conn == 4:
        return (i + 2 * k - 1, j) if k < 2 else (i, j + 2 * k - 5)
    kk = k + 1 if k >= 4 else k
    return i + kk // 3 - 1, j + kk % 3 - 1


@njit(cache=True, nogil=True)
def grow(grid, have, conn, passes):
    """Fill the cells of ``grid`` (gh, gw, C) whose ``have`` (uint8: 1 filled, 0 empty) is
    0, outwards: each pass, every empty cell beside a filled one (``conn`` 4 or 8
    neighbours) takes the mean of its filled neighbours and counts as filled (1) from the
    next pass on; at most ``passes`` passes (-1: until none is left).

    Only the frontier is visited: a cell filled in pass k can first help in pass k + 1, so
    each pass looks at the empty neighbours of the last pass's cells, not at the whole
    grid. Neighbours are summed in the order a sweep over the grid would sum them."""
    gh, gw, nch = grid.shape
    front = np.empty(gh * gw, np.int32)
    cand = np.empty(gh * gw, np.int32)
    nf = 0
    for i in range(gh):
        for j in range(gw):
            if have[i, j] != 0:
                front[nf] = i * gw + j
                nf += 1
    done = 0
    while nf > 0 and done != passes:
        done += 1
        nc = 0
        for f in range(nf):
            i, j = divmod(front[f], gw)
            for k in range(conn):
                ii, jj = _neighbour(i, j, k, conn)
                if 0 <= ii < gh and 0 <= jj < gw and have[ii, jj] == 0:
                    have[ii, jj] = 2  # queued: still empty to its neighbours this pass
                    cand[nc] = ii * gw + jj
                    nc += 1
        for c in range(nc):
            i, j = divmod(cand[c], gw)
            for ch in range(nch):
                n = 0.0
                acc = 0.0
                for k in range(conn):
                    ii, jj = _neighbour(i, j, k, conn)
                    if 0 <= ii < gh and 0 <= jj < gw and have[ii, jj] == 1:
                        n += 1.0
                        acc += grid[ii, jj, ch]
                grid[i, j, ch] = acc / n
        for c in range(nc):
            i, j = divmod(cand[c], gw)
            have[i, j] = 1
        front, cand = cand, front
        nf = nc


@njit(cache=True, nogil=True)
def dilate_same(src, tmp, dst):
    """dst = src where the 3x3 neighbourhood (clamped) holds one value, else 2.

    Interior loops have no clamping or branches, so they vectorise.
    """
    h, w = src.shape
    two = np.uint8(2)
    for i in range(h):
        tmp[i, 0] = src[i, 0] if src[i, 1] == src[i, 0] else two
        tmp[i, w - 1] = src[i, w - 1] if src[i, w - 2] == src[i, w - 1] else two
        for j in range(1, w - 1):
            c = src[i, j]
            tmp[i, j] = c if (src[i, j - 1] == c) & (src[i, j + 1] == c) else two
    for i in range(h):
        im = max(i - 1, 0)
        ip = min(i + 1, h - 1)
        for j in range(w):
            c = tmp[i, j]
            dst[i, j] = c if (tmp[im, j] == c) & (tmp[ip, j] == c) else two


@njit(cache=True, nogil=True)
def screen_stays_screen(cat, a_lo, y, screen_y, strong, luma_tol, blk):
    """4:2:0 bleed: screen samples (``cat`` 0) beside a sample keyed at least ``strong``
    (8-neighbourhood) whose four luma pixels are all within ``luma_tol`` of the clean
    plate's become screen runs (``blk`` 0). Their 2x2 block's colour and every pixel's
    brightness are the screen's, and the edge model would otherwise carry the neighbour's
    alpha into them along every hard edge. Faint detail away from solid avatar (hair wisps,
    whose chroma is under the noise) keeps the edge model, and so does a pixel whose
    brightness is not the screen's (a strand too thin to move the block's chroma)."""
    h, w = y.shape
    ch, cw = cat.shape
    for i in range(ch):
        ya = 2 * i
        yb = min(ya + 1, h - 1)
        im = max(i - 1, 0)
        ip = min(i + 1, ch - 1)
        j = -1
        while True:  # only the edge samples (blk 2)
            j = _next_edge(blk, i, j + 1)
            if j >= cw:
                break
            if cat[i, j] != 0:
                continue
            jm = max(j - 1, 0)
            jp = min(j + 1, cw - 1)
            near = False
            for ii in (im, i, ip):
                for jj in (jm, j, jp):
                    if a_lo[ii, jj] >= strong:
                        near = True
            if not near:
                continue
            if _block_dev(y, ya, yb, 2 * j, w, screen_y[i, j]) < luma_tol:
                blk[i, j] = 0


class SolidEdge(NamedTuple):
    """``solid_edges``' settings: the clip points (``lo``, ``hi``), how far the white point
    moves towards the solid neighbours' level (``level``), and the luma test of a solid
    sample: contrast between the solid neighbours' and the screen's luma above
    ``contrast`` levels, each luma pixel within ``share`` x that contrast of the
    neighbours', alpha above ``min_alpha``."""

    lo: Real
    hi: Real
    level: Real
    contrast: Real
    share: Real
    min_alpha: Real


@njit(cache=True, nogil=True, inline="always")
def _solid_row(cat, lin, ylo, i, j0, j, j2):
    """Count, summed ``lin`` and summed ``ylo`` of the solid samples (``cat`` 1) among
    columns j0, j, j2 of row i (branch-free)."""
    m0 = np.float32(cat[i, j0] == 1)
    m1 = np.float32(cat[i, j] == 1)
    m2 = np.float32(cat[i, j2] == 1)
    n = m0 + m1 + m2
    sl = m0 * lin[i, j0] + m1 * lin[i, j] + m2 * lin[i, j2]
    sy = m0 * ylo[i, j0] + m1 * ylo[i, j] + m2 * ylo[i, j2]
    return n, sl, sy


@njit(cache=True, nogil=True)
def solid_edges(cat, alpha, lin, y, ylo, screen_y, se, cols):
    """I420: ``despeckle``, and the edge samples (``cat`` 2) beside solid ones (``cat`` 1,
    8-neighbourhood, clamped at the borders):

    - a sample whose four luma pixels all lie at its solid neighbours' mean luma, clearly
      apart from the screen's, is solid (alpha 1, ``cat`` 1): its chroma was pulled
      towards the screen by spill, not by the screen showing through;
    - the others are mixes of the screen and that solid colour: their white point moves
      ``se.level`` of the way from the clip's towards the solid neighbours' own solved mix
      (``lin``), so that the clip applied after the edge model stretches them no further
      than the avatar beside them needs (``alpha`` is rescaled to keep that clip).

    Only solid samples present before the pass count as neighbours (``cols``: int32
    (2, cw + 1) scratch, the columns that turn solid, applied one row later)."""
    ch, cw = cat.shape
    h, w = y.shape
    lo = np.float32(se.lo)
    hi = np.float32(se.hi)
    level = np.float32(se.level)
    contrast = np.float32(se.contrast)
    share = np.float32(se.share)
    min_alpha = np.float32(se.min_alpha)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for i in range(ch + 2):
        if i >= 2:  # row i - 2 is no one's neighbour any more
            r = (i - 2) & 1
            for q in range(cols[r, cw]):
                cat[i - 2, cols[r, q]] = 1
        if i >= ch:
            continue
        r = i & 1
        cols[r, cw] = 0
        i0 = max(i - 1, 0)
        i2 = min(i + 1, ch - 1)
        ya = 2 * i
        yb = min(ya + 1, h - 1)
        j = -1
        while True:
            j = _next_edge(cat, i, j + 1)
            if j >= cw:
                break
            j0 = max(j - 1, 0)
            j2 = min(j + 1, cw - 1)
            if _lone(cat, i, j, i0, i2, j0, j2):  # noise (see ``despeckle``)
                cat[i, j] = 0
                alpha[i, j] = zero
                continue
            n0, l0, s0 = _solid_row(cat, lin, ylo, i0, j0, j, j2)
            n1, l1, s1 = _solid_row(cat, lin, ylo, i, j0, j, j2)
            n2, l2, s2 = _solid_row(cat, lin, ylo, i2, j0, j, j2)
            n = n0 + n1 + n2
            a = alpha[i, j]
            if (n == zero) | (a <= zero):
                continue
            inv = one / n
            white = hi + level * (min(max((l0 + l1 + l2) * inv, hi), one) - hi)
            a = lo + (a - lo) * (hi - lo) / (white - lo)
            fy = (s0 + s1 + s2) * inv
            con = abs(fy - screen_y[i, j])
            d = _block_dev(y, ya, yb, 2 * j, w, fy)
            if (a > min_alpha) & (con > contrast) & (d < share * con):
                alpha[i, j] = one
                cols[r, cols[r, cw]] = j
                cols[r, cw] += 1
            else:
                alpha[i, j] = a


@njit(cache=True, nogil=True)
def luma_half(y, ylo):
    """Luma at chroma resolution: the mean of each 2x2 block (clamped at the borders),
    the guide of ``luma_key`` and ``guided_coeffs``."""
    h, w = y.shape
    ch, cw = ylo.shape
    for i in range(ch):
        ya = 2 * i
        yb = min(ya + 1, h - 1)
        for j in range(cw - 1):
            ylo[i, j] = np.float32(0.25) * (
                np.float32(y[ya, 2 * j]) + np.float32(y[ya, 2 * j + 1])
                + np.float32(y[yb, 2 * j]) + np.float32(y[yb, 2 * j + 1])
            )  # fmt: skip
        xa = 2 * (cw - 1)
        xb = min(xa + 1, w - 1)
        ylo[i, cw - 1] = np.float32(0.25) * (
            np.float32(y[ya, xa])
            + np.float32(y[ya, xb])
            + np.float32(y[yb, xa])
            + np.float32(y[yb, xb])
        )


@njit(cache=True, nogil=True, inline="always")
def _cell_box(sums, gi, gj, r):
    """Sums of the three ``sums`` channels over the cells within ``r`` of (gi, gj)."""
    gh = sums.shape[1]
    gw = sums.shape[2]
    n = 0.0
    s = 0.0
    ss = 0.0
    for ii in range(max(gi - r, 0), min(gi + r + 1, gh)):
        for jj in range(max(gj - r, 0), min(gj + r + 1, gw)):
            n += sums[0, ii, jj]
            s += sums[1, ii, jj]
            ss += sums[2, ii, jj]
    return n, s, ss


@njit(cache=True, nogil=True, inline="always")
def _luma_edge(ylo, screen_y, alpha, cells, sums, i, j, lk):
    """``luma_key`` at one edge sample (i, j): its cell's foreground luma and what the
    spread costs (found once per cell), then the blend towards the luma key."""
    weight, c0, inv_span, texture, reach, far, off, scale = lk
    gi = i // FG_CELL
    gj = j // FG_CELL
    if np.isnan(cells[0, gi, gj]):
        n, s, ss = _cell_box(sums, gi, gj, reach)
        if n == 0.0:
            n, s, ss = _cell_box(sums, gi, gj, far)
        fy = s / max(n, 1.0)
        cells[0, gi, gj] = fy
        spread = math.sqrt(max(ss / max(n, 1.0) - fy * fy, 0.0))
        # no solid sample in reach: no contrast to trust
        cells[1, gi, gj] = c0 + texture * spread if n > 0.0 else np.inf
    sy = np.float64(screen_y[i, j])
    con = cells[0, gi, gj] - sy
    wgt = min(max((abs(con) - cells[1, gi, gj]) * inv_span, 0.0), 1.0) * weight
    if wgt <= 0.0 or abs(con) < 1e-3:
        return
    ay = min(max((np.float64(ylo[i, j]) - sy) / con, 0.0), 1.0)
    a = np.float64(alpha[i, j])
    alpha[i, j] = a + wgt * (off + scale * ay - a)


@njit(cache=True, nogil=True, error_model="numpy")
def luma_key(ylo, screen_y, cat, alpha, orig, lk, sums, cells):
    """Block-codec streams: the edge samples' alpha (``cat`` 2) leans towards the luma
    key ``(Y - screen Y) / (foreground Y - screen Y)``, the foreground's luma being the
    mean of the solid samples (``cat`` 1, on a lattice of one row per cell and every other
    column) in the cells of
    ``FG_CELL`` chroma samples within ``lk.reach`` cells (``lk.far`` where there are
    none). The weight grows with the luma contrast between foreground and screen less
    ``lk.texture`` times the foreground's own luma spread (``LumaKey``): the codec blurs
    chroma across an edge far more than luma, so where the two differ clearly in
    brightness luma tells where the edge lies (and opens the screen between fingers keyed
    solid). ``orig`` gets the chroma key's alpha (every sample), for the guided model's
    fit measure. ``sums``: float64 (3, gh, gw) scratch (per cell), ``cells``: float64
    (2, gh, gw) scratch (each cell's foreground luma and what its spread costs, found for
    the cells with edge samples only)."""
    ch, cw = alpha.shape
    sums[:] = 0.0
    cells[0] = np.nan
    for i in range(ch):
        for j in range(cw):
            orig[i, j] = alpha[i, j]
    # per cell, the solid samples' count, luma and luma^2: one row in each cell (its
    # second), every other column; words of 8 samples without a solid one are skipped
    ones = _ONES8
    nw = cw >> 3
    for i in range(1, ch, FG_CELL):
        gi = i // FG_CELL
        for q in range(nw + 1):
            if q < nw and (_load8(cat, i, q << 3) & ones) == 0:
                continue
            for j in range(q << 3, min((q << 3) + 8, cw), 2):
                if cat[i, j] == 1:
                    lum = np.float64(ylo[i, j])
                    gj = j // FG_CELL
                    sums[0, gi, gj] += 1.0
                    sums[1, gi, gj] += lum
                    sums[2, gi, gj] += lum * lum
    for i in range(ch):
        j = -1
        while True:  # the edge samples
            j = _next_edge(cat, i, j + 1)
            if j >= cw:
                break
            _luma_edge(ylo, screen_y, alpha, cells, sums, i, j, lk)


#: ``motion_soften``'s scan: the edge category (2) in the first and the last four samples
#: of an 8-byte word, one ``FG_CELL`` each.
_EDGE_LO4 = np.uint64(0x02020202)
_EDGE_HI4 = np.uint64(0x0202020200000000)
assert FG_CELL == 4, "motion_soften's scan reads two cells per 8-sample word"


class Motion(NamedTuple):
    """``motion_soften``'s settings: last frame's luma at chroma resolution (``luma_half``),
    the displacement (samples a frame) where softening starts (``t0``) and 1 / the span
    over which it grows to full (``inv_span``), the weight at full motion (the codec
    level), the map of a moving sample's key onto the steepened clip points' scale (``off
    + gain * alpha``) and the least luma step a sample (levels) the displacement divides
    by (``gfloor``: flat areas' noise is no motion)."""

    prev_y: np.ndarray
    t0: Real
    inv_span: Real
    weight: Real
    off: Real
    gain: Real
    gfloor: Real


@njit(cache=True, nogil=True, error_model="numpy")
def motion_soften(ylo, kind, alpha, lin, mo, cells):
    """Block-codec streams: an edge sample (``kind`` 2) on a moving edge, whose true ramp
    is its motion blur, as wide as the codec's blurred one, is mapped back towards the clip
    points without the codec's steepening (``mo.off + mo.gain * alpha``; a solid sample,
    alpha 1, from its unclipped key ``lin``). How far the edge moved is measured per cell
    of ``FG_CELL`` x ``FG_CELL`` samples: the summed |luma change| since last frame
    (``mo.prev_y``) over the summed luma steps between neighbours (at least ``mo.gfloor``
    levels a sample), in samples; the weight grows from ``mo.t0`` to full over 1 /
    ``mo.inv_span`` samples, times ``mo.weight`` (``Motion``). Static edges, sharp in
    truth, keep the steepening. ``cells``: float32 (gh, gw), gets each cell's weight (0
    for cells without edge samples)."""
    prev_y, t0, inv_span, weight, off, gain, gfloor = mo
    ch, cw = alpha.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    gh, gw = cells.shape
    cells[:] = zero
    # the cells with edge samples: a word of 8 samples spans two cells' columns
    nw = cw >> 3
    for i in range(ch):
        gi = i // FG_CELL
        for q in range(nw):
            w = _load8(kind, i, q << 3)
            cells[gi, 2 * q] += np.float32((w & _EDGE_LO4) != 0)
            cells[gi, 2 * q + 1] += np.float32((w & _EDGE_HI4) != 0)
        for j in range(nw << 3, cw):
            if kind[i, j] == 2:
                cells[gi, j // FG_CELL] = one
    for gi in range(gh):
        i0 = gi * FG_CELL
        i1 = min(i0 + FG_CELL, ch)
        for gj in range(gw):
            if cells[gi, gj] == zero:
                continue
            j0 = gj * FG_CELL
            j1 = min(j0 + FG_CELL, cw)
            d = zero
            gs = zero
            for ii in range(i0, i1):
                ib = min(ii + 1, ch - 1)
                for jj in range(j0, j1):
                    y0 = ylo[ii, jj]
                    d += abs(y0 - prev_y[ii, jj])
                    gs += abs(ylo[ii, min(jj + 1, cw - 1)] - y0) + abs(ylo[ib, jj] - y0)
            m = d / max(gs, np.float32(gfloor) * np.float32((i1 - i0) * (j1 - j0)))
            wgt = min(max((m - t0) * inv_span, zero), one) * weight
            cells[gi, gj] = wgt
            if wgt <= zero:
                continue
            for ii in range(i0, i1):
                for jj in range(j0, j1):
                    if kind[ii, jj] != 2:
                        continue
                    a = alpha[ii, jj]
                    x = lin[ii, jj] if a >= one else a
                    alpha[ii, jj] = a + wgt * (off + gain * x - a)


@njit(cache=True, nogil=True, inline="always")
def _column_moments(ylo, alpha, i0, i, i2, jj, plateau):
    """Weighted sums over one column (rows i0, i, i2) of a 3x3 window: (weight, luma,
    alpha, luma^2, luma alpha, alpha^2, min alpha); see ``_window_moments``."""
    sw = 0.0
    si = 0.0
    sp = 0.0
    sii = 0.0
    sip = 0.0
    spp = 0.0
    amin = 1.0
    for ii in (i0, i, i2):
        lum = np.float64(ylo[ii, jj])
        p = np.float64(alpha[ii, jj])
        amin = min(amin, p)
        q = 2.0 * p - 1.0
        wgt = 1.0 + plateau * q * q
        wl = wgt * lum
        wp = wgt * p
        sw += wgt
        si += wl
        sp += wp
        sii += wl * lum
        sip += wl * p
        spp += wp * p
    return sw, si, sp, sii, sip, spp, amin


@njit(cache=True, nogil=True, inline="always")
def _window_moments(ylo, alpha, i0, i, i2, j0, j, j2, s0, screen_w, plateau):
    """(mean luma, mean alpha, var luma, cov, var alpha, min alpha) over the 3x3 window
    (rows i0, i, i2; columns j0, j, j2) plus ``screen_w`` samples of (``s0``, alpha 0),
    each sample weighing 1 + ``plateau`` (2 alpha - 1)^2. With both 0 it is the plain
    window."""
    return _moments(
        _column_moments(ylo, alpha, i0, i, i2, j0, plateau),
        _column_moments(ylo, alpha, i0, i, i2, j, plateau),
        _column_moments(ylo, alpha, i0, i, i2, j2, plateau),
        s0,
        screen_w,
    )


@njit(cache=True, nogil=True, inline="always")
def _moments(c0, c1, c2, s0, screen_w):
    """``_window_moments`` from its three columns' sums."""
    sw = screen_w + c0[0] + c1[0] + c2[0]
    si = screen_w * s0 + c0[1] + c1[1] + c2[1]
    sp = c0[2] + c1[2] + c2[2]
    sii = screen_w * s0 * s0 + c0[3] + c1[3] + c2[3]
    sip = c0[4] + c1[4] + c2[4]
    spp = c0[5] + c1[5] + c2[5]
    amin = min(c0[6], c1[6], c2[6])
    mi = si / sw
    mp = sp / sw
    return mi, mp, sii / sw - mi * mi, sip / sw - mi * mp, spp / sw - mp * mp, amin


@njit(cache=True, nogil=True, error_model="numpy")
def guided_coeffs(alpha, eps, noise, anchor, edge_below, kind, ca, cb, ylo, codec):
    """Local linear model alpha ~ ca * Y + cb over 3x3 chroma windows (a guided filter).

    Only where ``kind`` (the 3x3-dilated category) is 2; constant windows get ca = 0 and
    cb = alpha. ``ylo`` is the luma at chroma resolution (``luma_half``).

    The slope is cov / (var + eps + noise[0] x min(1, alpha's variance x noise[1])): a
    window whose alpha swings (an edge) but whose luma barely does (skin as bright as the
    screen) would fit the luma noise and shading, so its slope is damped by ``noise[0]``;
    faint detail (hair wisps, small alpha swings) keeps its slope. The line passes through
    the window's mean (``anchor`` 0, the classic guided filter) or, in windows reaching
    below ``edge_below`` (an edge towards the screen), through the sample's own alpha and
    luma (``anchor`` 1), or between. Through its own sample, a window the luma cannot
    explain leaves the sample its own alpha instead of the window's mean: the
    coefficients' bilinear carry to full resolution then blurs it once, not twice.
    Windows inside the avatar keep the mean (a near-key shirt's weaker samples are lifted
    by the solid ones around them).

    Block-codec streams: ``codec`` (Codec) adds ``codec.screen_w`` samples of (the clean
    plate's luma ``codec.screen_y``, alpha 0) to each window, and a sample weighs 1 +
    ``codec.plateau`` (2 alpha - 1)^2, so samples keyed near 0 or 1 count more than the
    ramp between them: the codec's blurred chroma ramp decides less, and the screen's luma
    and the solid side's more, where the edge lies. ``codec.fit`` (float64[2]) then adds
    the fit's R^2 and a count over the windows whose alpha and luma both vary
    (``FIT_VAR_ALPHA``, ``FIT_VAR_LUMA``), measured on ``codec.fit_alpha`` (the chroma
    key's alpha, before ``luma_key`` leaned it on luma) in the windows of even rows. With
    both weights 0 the plain fit runs. On a moving edge (``codec.moving``, per cell of
    ``FG_CELL`` samples) the regularisation grows by ``codec.moving_eps`` x its weight:
    the codec's luma there is as unsure of the edge as its chroma, so the model leans
    towards the window's mean alpha.
    """
    screen_y, screen_w, plateau, fit, fit_alpha, moving, moving_eps = codec
    weighted = (screen_w > 0.0) | (plateau > 0.0)
    ch, cw = alpha.shape
    for i in range(ch):
        for j in range(cw):  # constant windows first, branch-free
            ca[i, j] = 0.0
            cb[i, j] = alpha[i, j]
    for i in range(ch):
        i0 = max(i - 1, 0)
        i2 = min(i + 1, ch - 1)
        j = -1
        last = -2
        c0 = c1 = c2 = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        while True:
            j = _next_edge(kind, i, j + 1)
            if j >= cw:
                break
            j0 = max(j - 1, 0)
            j2 = min(j + 1, cw - 1)
            # along a run of edge samples the window slides: two of its columns are known
            if j == last + 1 and j2 == j + 1:
                c0 = c1
                c1 = c2
            else:
                c0 = _column_moments(ylo, alpha, i0, i, i2, j0, plateau)
                c1 = _column_moments(ylo, alpha, i0, i, i2, j, plateau)
            c2 = _column_moments(ylo, alpha, i0, i, i2, j2, plateau)
            last = j
            s0 = np.float64(screen_y[i, j])
            mi, mp, var, cov, vp, amin = _moments(c0, c1, c2, s0, screen_w)
            if weighted and (i & 1) == 0:  # the fit measure, on the chroma key's own alpha
                _, _, fvar, fcov, fvp, _ = _window_moments(
                    ylo, fit_alpha, i0, i, i2, j0, j, j2, s0, screen_w, plateau
                )
                if fvp > FIT_VAR_ALPHA and fvar > FIT_VAR_LUMA:
                    fit[0] += fcov * fcov / (fvar * fvp)
                    fit[1] += 1.0
            e = eps + moving_eps * moving[i // FG_CELL, j // FG_CELL]
            a = cov / (var + e + noise[0] * min(vp * noise[1], 1.0))
            ca[i, j] = a
            k = anchor if amin < edge_below else 0.0
            cb[i, j] = mp + k * (alpha[i, j] - mp) - a * (mi + k * (ylo[i, j] - mi))


@njit(cache=True, nogil=True)
def block_grid(plane, row0, rowstep, lim, sums):
    """Block-codec evidence: the mean |difference| of horizontal neighbours of ``plane``
    by the phase (mod 8) of the boundary between them, on rows ``row0``, ``row0 +
    rowstep``, ...; differences of ``lim`` or more (edges, texture) are left out.
    ``sums[k]`` adds the differences at phase k and ``sums[8 + k]`` counts them. A block
    codec (VP8, H.264, 4x4 and 8x8 transforms, 16x16 macroblocks) leaves its flat areas
    with steps on the block grid; sensor noise and clean renders have none. An (H, W, 3)
    RGB frame is read by its luma (the RGB path's reading of a decoder's grid)."""
    h, w = plane.shape[0], plane.shape[1]
    for i in range(row0, h, rowstep):
        prev = _luma(plane, i, 0) if plane.ndim == 3 else np.int32(plane[i, 0])
        for j in range(1, w):
            cur = _luma(plane, i, j) if plane.ndim == 3 else np.int32(plane[i, j])
            d = abs(cur - prev)
            prev = cur
            if d < lim:
                k = j & 7
                sums[k] += d
                sums[8 + k] += 1.0


@njit(cache=True, nogil=True, inline="always")
def _unmix_fix(s, a, d_f, d_s, amount):
    """How much more of the screen to take out (and of the background to put in) at an
    edge, as a share of the screen: the unmixed, premultiplied foreground's colour
    difference ``s`` above ``a`` times the local foreground's own (never above 0 for
    non-key colours) is screen that alpha left in, far below it is screen taken out twice.
    Removing the screen colour as a whole (not only its key primary) leaves no cyan or
    yellow line where the screen's other primaries showed through."""
    up = a * max(d_f, 0.0)
    lo = a * (min(d_f, 0.0) - _UNMIX_SLACK * d_s)
    x = 0.0
    if s > up:
        x = (s - up) * amount
    elif s < lo:
        x = s - lo
    return min(max(x / max(d_s, 1.0), -(1.0 - a)), a)


@njit(cache=True, nogil=True, error_model="numpy")
def chroma_i420_rows(
    r0, r1, fg, bg, guide, screen_y, matte, axis, despill, clip, out, alpha, want_alpha
):
    """Composite chroma rows [r0, r1): alpha from the guided model on full-res luma,
    unmixing against the clean plate, bounded despill, blend with the background.

    ``fg``, ``bg``, ``out`` are Planes; ``guide`` (Guide) holds the edge model and the
    block state: runs of all-screen (0) and all-avatar (1) chroma samples are copied row
    by row. ``screen_y`` is the plate's luma, ``matte`` (Matte) its chroma and the local
    foreground's, ``axis`` (KeyAxis) the colour difference, ``despill`` (YuvDespill),
    ``clip`` (Clip, applied to the guided alpha).
    """
    y, u, v = fg
    by, bu, bv = bg
    oy, ou, ov = out
    ca, cb, blk = guide
    su_p, sv_p, fu_p, fv_p, _k2, _mn2, _solid2, _off2, lin = matte
    c1u, c1v, c2u, c2v = axis
    amount, spu, spv, spy = despill
    h, w = y.shape
    ch, cw = u.shape
    zero32 = np.float32(0.0)
    a1u, a1v, a2u, a2v = (np.float32(c1u), np.float32(c1v), np.float32(c2u), np.float32(c2v))
    amount32 = np.float32(amount)
    for i in range(r0, r1):
        ya = 2 * i
        yb = min(ya + 1, h - 1)
        j = 0
        while j < cw:
            st = blk[i, j]
            j1 = j + 1
            j1 = _run_end(blk, i, j1, st)
            x0 = 2 * j
            x1 = min(2 * j1, w)
            if st == 0:
                _copy(oy, ya, by, ya, x0, x1)
                _copy(oy, yb, by, yb, x0, x1)
                _copy(ou, i, bu, i, j, j1)
                _copy(ov, i, bv, i, j, j1)
                if want_alpha:
                    _fill(alpha, ya, x0, x1, 0)
                    _fill(alpha, yb, x0, x1, 0)
            elif st == 1:
                _copy(oy, ya, y, ya, x0, x1)
                _copy(oy, yb, y, yb, x0, x1)
                if want_alpha:
                    _fill(alpha, ya, x0, x1, 255)
                    _fill(alpha, yb, x0, x1, 255)
                for jj in range(j, j1):  # all avatar: remove spill beyond its own colour
                    cu = np.float32(u[i, jj]) - np.float32(128.0)
                    cv = np.float32(v[i, jj]) - np.float32(128.0)
                    pu = fu_p[i, jj]
                    pv = fv_p[i, jj]
                    df = max(min(a1u * pu + a1v * pv, a2u * pu + a2v * pv), zero32)
                    ex = min(a1u * cu + a1v * cv, a2u * cu + a2v * cv) - df
                    if ex <= zero32:  # no more key colour than the avatar's own: keep it
                        ou[i, jj] = u[i, jj]
                        ov[i, jj] = v[i, jj]
                        continue
                    # screen light (spill): what the solved mix leaves short of 1 is traded
                    # for the background (no cyan or yellow rims), up to _SPILL_MAX and to
                    # a few times the key colour in excess; beyond that the primary is limited
                    su = su_p[i, jj]
                    sv = sv_p[i, jj]
                    ds = max(min(a1u * su + a1v * sv, a2u * su + a2v * sv), np.float32(1.0))
                    x = min(
                        (np.float32(1.0) - lin[i, jj]) * amount32,
                        np.float32(_SPILL_GAIN) * ex / ds,
                        np.float32(_SPILL_MAX),
                    )
                    fu = cu - x * su
                    fv = cv - x * sv
                    sd = min(a1u * fu + a1v * fv, a2u * fu + a2v * fv)
                    rest = max(sd - df, zero32) * amount32
                    sy = screen_y[i, jj]
                    ou[i, jj] = _u8(fu + 128.0 + x * (np.float64(bu[i, jj]) - 128.0) + rest * spu)
                    ov[i, jj] = _u8(fv + 128.0 + x * (np.float64(bv[i, jj]) - 128.0) + rest * spv)
                    xa = 2 * jj
                    xb = min(xa + 1, w - 1)
                    for yy, xx in ((ya, xa), (ya, xb), (yb, xa), (yb, xb)):
                        oy[yy, xx] = _u8(y[yy, xx] + x * (np.float64(by[yy, xx]) - sy) + rest * spy)
            else:
                for jj in range(j, j1):  # the soft edge, one chroma sample and its 2x2 luma block
                    im = max(i - 1, 0)
                    ip = min(i + 1, ch - 1)
                    jm = max(jj - 1, 0)
                    jp = min(jj + 1, cw - 1)
                    xa = 2 * jj
                    xb = min(xa + 1, w - 1)
                    sy = screen_y[i, jj]
                    # the 3x3 coefficients around this sample, loaded once for the four luma pixels
                    a11 = ca[i, jj]
                    b11 = cb[i, jj]
                    asum = 0.0
                    for di in range(2):
                        yy = ya if di == 0 else yb
                        ni = im if di == 0 else ip
                        a_n = ca[ni, jj]
                        b_n = cb[ni, jj]
                        for dj in range(2):
                            xx = xa if dj == 0 else xb
                            nj = jm if dj == 0 else jp
                            ga = 0.5625 * a11 + 0.1875 * (a_n + ca[i, nj]) + 0.0625 * ca[ni, nj]
                            gb = 0.5625 * b11 + 0.1875 * (b_n + cb[i, nj]) + 0.0625 * cb[ni, nj]
                            fy = np.float64(y[yy, xx])
                            a = _clip(ga * fy + gb, clip)
                            if a < 0.002:
                                a = 0.0
                            elif a > 0.998:
                                a = 1.0
                            asum += a
                            if want_alpha:
                                alpha[yy, xx] = _u8(a * 255.0)
                            if a == 0.0:
                                oy[yy, xx] = by[yy, xx]
                            else:
                                oy[yy, xx] = _u8(fy + (1.0 - a) * (np.float64(by[yy, xx]) - sy))
                    ac = asum * 0.25
                    if ac == 0.0:
                        ou[i, jj] = bu[i, jj]
                        ov[i, jj] = bv[i, jj]
                        continue
                    # chroma unmixes by the solved mix itself (before the clip), so a
                    # spill-lit or blurred edge loses its screen colour
                    t = 1.0 - min(np.float64(lin[i, jj]), ac)
                    su = np.float64(su_p[i, jj])
                    sv = np.float64(sv_p[i, jj])
                    mu = np.float64(u[i, jj]) - 128.0 - t * su
                    mv = np.float64(v[i, jj]) - 128.0 - t * sv
                    x = _unmix_fix(
                        _cdiff(mu, mv, c1u, c1v, c2u, c2v),
                        1.0 - t,
                        _cdiff(fu_p[i, jj], fv_p[i, jj], c1u, c1v, c2u, c2v),
                        _cdiff(su, sv, c1u, c1v, c2u, c2v),
                        amount,
                    )
                    t += x
                    mu -= x * su
                    mv -= x * sv
                    ou[i, jj] = _u8(128.0 + mu + t * (np.float64(bu[i, jj]) - 128.0))
                    ov[i, jj] = _u8(128.0 + mv + t * (np.float64(bv[i, jj]) - 128.0))
                    dt = t - (1.0 - ac)  # luma took out 1 - ac of the screen so far
                    if dt != 0.0:
                        for yy, xx in ((ya, xa), (ya, xb), (yb, xa), (yb, xb)):
                            oy[yy, xx] = _u8(oy[yy, xx] + dt * (np.float64(by[yy, xx]) - sy))
            j = j1


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def chroma_i420_par(
    chunks, fg, bg, guide, screen_y, matte, axis, despill, clip, out, alpha, want_alpha
):
    """``chroma_i420_rows`` over ``chunks`` bands of chroma rows."""
    ch = fg.u.shape[0]
    step = (ch + chunks - 1) // chunks
    for c in prange(chunks):
        chroma_i420_rows(
            c * step, min(ch, (c + 1) * step), fg, bg, guide, screen_y, matte, axis, despill,
            clip, out, alpha, want_alpha,
        )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def chroma_rgb_rows(
    r0, r1, fg, bg, blk, ramp, matte, screen, prim, clip, temporal, despill, out, alpha, want_alpha
):
    """Key + unmix + bounded despill + composite for rows [r0, r1) of an RGB frame.

    ``fg``, ``bg`` and ``out`` are (H, 3 W) views of the (H, W, 3) frames, so that runs
    copy as plain rows.
    ``blk`` (chroma resolution) marks runs that are all screen (0, the background is
    copied) or all avatar (1, copied with spill removed); elsewhere alpha comes per pixel
    from the compositing equation on the pixel's own chroma against ``matte`` (Matte),
    moved towards the unclipped alpha on a wide linear ramp (``ramp``: RgbRamp).
    ``screen`` (RgbPlate) is the clean plate's colour, ``prim`` (Primary) the key primary,
    ``clip`` (Clip) and ``temporal`` (Temporal, uint8 ``prev`` at full resolution) shape
    alpha, ``despill`` (RgbDespill) the spill removal.
    """
    w = fg.shape[1] // 3
    cw = blk.shape[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    e0, e1, e2 = prim
    tk, tinv, prev, have_prev = temporal
    amount, luma_w = despill
    su_p, sv_p, fu_p, fv_p, k2, mn2, solid2, off2, lin = matte
    off_inv = one / off2
    for i in range(r0, r1):
        ci = i >> 1
        j = 0
        while j < cw:
            st = blk[ci, j]
            j1 = j + 1
            j1 = _run_end(blk, ci, j1, st)
            x0 = 2 * j
            x1 = min(2 * j1, w)
            j = j1
            if st == 0:
                _copy(out, i, bg, i, 3 * x0, 3 * x1)
                if want_alpha:
                    _fill(alpha, i, x0, x1, 0)
                if tk > 0.0:
                    _fill(prev, i, x0, x1, 0)
                continue
            if st == 1:
                for x in range(x0, x1):  # opaque: limit the key primary beyond the avatar's own
                    c0 = np.float32(fg[i, 3 * x + 0])
                    c1 = np.float32(fg[i, 3 * x + 1])
                    c2 = np.float32(fg[i, 3 * x + 2])
                    sp = _excess(c0, c1, c2, e0, e1, e2)
                    fr, fgn, fb = _rgb_of_chroma(fu_p[ci, x >> 1], fv_p[ci, x >> 1])
                    df = _excess(fr, fgn, fb, e0, e1, e2)
                    ex = sp - max(df, zero)
                    if ex <= zero:  # no more key colour than the avatar's own: keep it
                        out[i, 3 * x + 0] = fg[i, 3 * x + 0]
                        out[i, 3 * x + 1] = fg[i, 3 * x + 1]
                        out[i, 3 * x + 2] = fg[i, 3 * x + 2]
                        continue
                    # screen light (spill): what the solved mix leaves short of 1 is traded
                    # for the background (no cyan or yellow rims), up to _SPILL_MAX and to
                    # a few times the key colour in excess; beyond that the primary is limited
                    sr = screen.r[ci, x >> 1]
                    sg = screen.g[ci, x >> 1]
                    sb = screen.b[ci, x >> 1]
                    ds = max(_excess(sr, sg, sb, e0, e1, e2), one)
                    fx = min(
                        (one - lin[ci, x >> 1]) * amount,
                        np.float32(_SPILL_GAIN) * ex / ds,
                        np.float32(_SPILL_MAX),
                    )
                    sp = max(ex - fx * ds, zero) * amount
                    lift = sp * luma_w
                    out[i, 3 * x + 0] = _u8(
                        c0 + fx * (np.float32(bg[i, 3 * x + 0]) - sr) + lift - sp * e0
                    )
                    out[i, 3 * x + 1] = _u8(
                        c1 + fx * (np.float32(bg[i, 3 * x + 1]) - sg) + lift - sp * e1
                    )
                    out[i, 3 * x + 2] = _u8(
                        c2 + fx * (np.float32(bg[i, 3 * x + 2]) - sb) + lift - sp * e2
                    )
                if want_alpha:
                    _fill(alpha, i, x0, x1, 255)
                if tk > 0.0:
                    _fill(prev, i, x0, x1, 255)
                continue
            for x in range(x0, x1):
                cj = x >> 1
                c0 = np.float32(fg[i, 3 * x + 0])
                c1 = np.float32(fg[i, 3 * x + 1])
                c2 = np.float32(fg[i, 3 * x + 2])
                cu = _UR * c0 + _UG * c1 + _UB * c2
                cv = _VR * c0 + _VG * c1 + _VB * c2
                su = su_p[ci, cj]
                sv = sv_p[ci, cj]
                pu = fu_p[ci, cj]
                pv = fv_p[ci, cj]
                dx = su - pu
                dy = sv - pv
                n2 = max(dx * dx + dy * dy, mn2)
                eu = su - cu
                ev = sv - cv
                num = eu * dx + ev * dy
                inv = one / n2
                a = num * inv if (num > zero) and (num * num > k2 * n2) else zero
                off = _off_line_share(eu, ev, inv, num, solid2, off_inv)
                if off > zero:
                    a = min(a, one)
                    a += off * (one - a)
                a_lin = min(a, one)
                a = np.float32(_clip(a, clip))
                if ramp.plane[ci, cj] != 0:
                    a += ramp.share * (a_lin - a)
                if tk > 0.0:
                    if have_prev:
                        p = prev[i, x] * np.float32(1.0 / 255.0)
                        k = tk * (one - abs(a - p) * tinv)
                        if k > zero:
                            a += k * (p - a)
                    prev[i, x] = np.uint8(a * np.float32(255.0) + np.float32(0.5))
                if a < np.float32(0.002):
                    out[i, 3 * x + 0] = bg[i, 3 * x + 0]
                    out[i, 3 * x + 1] = bg[i, 3 * x + 1]
                    out[i, 3 * x + 2] = bg[i, 3 * x + 2]
                    if want_alpha:
                        alpha[i, x] = 0
                    continue
                if a > np.float32(0.998):
                    a = one
                t = one - min(a_lin, a)  # colour unmixes by the solved mix before the clip
                m0 = c0 - t * screen.r[ci, cj]
                m1 = c1 - t * screen.g[ci, cj]
                m2 = c2 - t * screen.b[ci, cj]
                s = _excess(m0, m1, m2, e0, e1, e2)
                # colour differences of the local foreground and of the screen, from chroma
                fr, fgn, fb = _rgb_of_chroma(pu, pv)
                df = _excess(fr, fgn, fb, e0, e1, e2)
                sr = screen.r[ci, cj]
                sg = screen.g[ci, cj]
                sb = screen.b[ci, cj]
                ds = _excess(sr, sg, sb, e0, e1, e2)
                fx = np.float32(_unmix_fix(s, one - t, df, ds, amount))
                t += fx
                out[i, 3 * x + 0] = _u8(m0 + t * np.float32(bg[i, 3 * x + 0]) - fx * sr)
                out[i, 3 * x + 1] = _u8(m1 + t * np.float32(bg[i, 3 * x + 1]) - fx * sg)
                out[i, 3 * x + 2] = _u8(m2 + t * np.float32(bg[i, 3 * x + 2]) - fx * sb)
                if want_alpha:
                    alpha[i, x] = _u8(a * np.float32(255.0))


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def chroma_rgb_par(
    chunks, fg, bg, blk, ramp, matte, screen, prim, clip, temporal, despill, out, alpha, want_alpha
):
    """``chroma_rgb_rows`` over ``chunks`` row bands (the same (H, 3 W) views)."""
    h = fg.shape[0]
    step = (h + chunks - 1) // chunks
    for c in prange(chunks):
        chroma_rgb_rows(
            c * step, min(h, (c + 1) * step), fg, bg, blk, ramp, matte, screen, prim, clip,
            temporal, despill, out, alpha, want_alpha,
        )  # fmt: skip


# --------------------------------------------------------------------------- clean plate


@njit(cache=True, nogil=True)
def plate_accumulate(frame, ystep, cell, step, ref_u, ref_v, r2, visit, sums):
    """Sum Y/U/V of confident screen samples per grid cell (cell in chroma samples), on a
    lattice of ``step``, in the cells where ``visit`` is set.

    ``frame`` (Planes): luma is read at ``ystep`` times the chroma position (2 for a
    full-size Y plane, 1 for luma at chroma resolution). A sample counts when its centred
    chroma and that of its four neighbours two samples away lie within sqrt(r2) of its
    cell's reference (``ref_u``, ``ref_v``: the key's chroma, or the screen found nearby),
    so edges, spill and near-key clothes stay out. sums[..., 3] counts; sums[..., 4:6] add
    up the chroma offset along the reference direction and its square (for the noise level).
    """
    y, u, v = frame
    ch, cw = u.shape
    for i in range(0, ch, step):
        gi = i // cell
        for j in range(0, cw, step):
            gj = j // cell
            if visit[gi, gj] == 0:
                continue
            ku = ref_u[gi, gj]
            kv = ref_v[gi, gj]
            ok = True
            for ii, jj in ((i, j), (max(i - 2, 0), j), (min(i + 2, ch - 1), j),
                           (i, max(j - 2, 0)), (i, min(j + 2, cw - 1))):  # fmt: skip
                du = np.float64(u[ii, jj]) - 128.0 - ku
                dv = np.float64(v[ii, jj]) - 128.0 - kv
                if du * du + dv * dv > r2:
                    ok = False
                    break
            if ok:
                kn = math.sqrt(ku * ku + kv * kv) + 1e-9
                d0 = (
                    (np.float64(u[i, j]) - 128.0 - ku) * ku
                    + (np.float64(v[i, j]) - 128.0 - kv) * kv
                ) / kn
                sums[gi, gj, 0] += y[ystep * i, ystep * j]
                sums[gi, gj, 1] += u[i, j]
                sums[gi, gj, 2] += v[i, j]
                sums[gi, gj, 3] += 1.0
                sums[gi, gj, 4] += d0
                sums[gi, gj, 5] += d0 * d0


@njit(cache=True, nogil=True)
def plate_means(sums, rgb_from_uv, grid, valid):
    """RGB screen colour per cell from ``plate_accumulate``'s sums (Y, U, V, count, ...):
    the mean of each cell with samples (0 without), and ``valid`` 1 where it has at least
    three. ``rgb_from_uv`` (3, 2) maps centred (U, V) to R, G, B."""
    gh, gw = valid.shape
    for i in range(gh):
        for j in range(gw):
            n = sums[i, j, 3]
            valid[i, j] = 1 if n >= 3 else 0
            if n <= 0:
                for c in range(3):
                    grid[i, j, c] = 0.0
                continue
            yy = 1.164383 * (sums[i, j, 0] / n - 16.0)
            uu = sums[i, j, 1] / n - 128.0
            vv = sums[i, j, 2] / n - 128.0
            for c in range(3):
                grid[i, j, c] = yy + rgb_from_uv[c, 0] * uu + rgb_from_uv[c, 1] * vv


@njit(cache=True, nogil=True)
def plate_fill(grid, valid, fallback):
    """Fill cells without samples from their neighbours (4), growing outwards.

    grid (gh, gw, 3) float64 in place; valid (gh, gw) uint8 in place; fallback (3,) is
    used when no cell has samples.
    """
    gh, gw = valid.shape
    if not valid.any():
        for i in range(gh):
            for j in range(gw):
                for c in range(3):
                    grid[i, j, c] = fallback[c]
                valid[i, j] = 1
        return
    grow(grid, valid, 4, -1)


# --------------------------------------------------------------------------- segmentation


@njit(cache=True, nogil=True)
def i420_to_model_input(y, u, v, out, lum):
    """Sample an I420 frame down to the model's (h, w, 3) float RGB in [0, 1], plus its luma."""
    h, w = y.shape
    ch, cw = u.shape
    oh, ow = lum.shape
    for i in range(oh):
        sy0 = min(int((i + 0.25) * h / oh), h - 1)
        sy1 = min(int((i + 0.75) * h / oh), h - 1)
        for j in range(ow):
            sx0 = min(int((j + 0.25) * w / ow), w - 1)
            sx1 = min(int((j + 0.75) * w / ow), w - 1)
            yy = 0.25 * (
                np.float64(y[sy0, sx0]) + np.float64(y[sy0, sx1])
                + np.float64(y[sy1, sx0]) + np.float64(y[sy1, sx1])
            )  # fmt: skip
            ci = min((sy0 + sy1) >> 2, ch - 1)
            cj = min((sx0 + sx1) >> 2, cw - 1)
            uu = np.float64(u[ci, cj]) - 128.0
            vv = np.float64(v[ci, cj]) - 128.0
            r, g, b = _bt601_rgb(yy, uu, vv)
            out[i, j, 0] = _clamp01(r / 255.0)
            out[i, j, 1] = _clamp01(g / 255.0)
            out[i, j, 2] = _clamp01(b / 255.0)
            lum[i, j] = yy


@njit(cache=True, nogil=True)
def rgb_to_model_input(rgb, out, lum):
    """Sample an RGB frame down to the model's float RGB in [0, 1], plus BT.601 luma."""
    h, w = rgb.shape[0], rgb.shape[1]
    oh, ow = lum.shape
    for i in range(oh):
        sy0 = min(int((i + 0.25) * h / oh), h - 1)
        sy1 = min(int((i + 0.75) * h / oh), h - 1)
        for j in range(ow):
            sx0 = min(int((j + 0.25) * w / ow), w - 1)
            sx1 = min(int((j + 0.75) * w / ow), w - 1)
            for c in range(3):
                out[i, j, c] = (
                    np.float64(rgb[sy0, sx0, c]) + np.float64(rgb[sy0, sx1, c])
                    + np.float64(rgb[sy1, sx0, c]) + np.float64(rgb[sy1, sx1, c])
                ) * (0.25 / 255.0)  # fmt: skip
            lum[i, j] = 16.0 + 255.0 * (
                0.2568 * out[i, j, 0] + 0.5041 * out[i, j, 1] + 0.0979 * out[i, j, 2]
            )


@njit(cache=True, nogil=True)
def seg_mask(raw, low, inv_rng, tk, prev, have_prev, out):
    """Model probabilities -> mask in [0, 1] (``low`` maps to 0, ``low + 1/inv_rng`` to 1),
    pulled towards last frame's mask by ``tk`` where it changed by less than 1/4."""
    h, w = out.shape
    for i in range(h):
        for j in range(w):
            m = min(max((raw[i, j] - low) * inv_rng, np.float32(0.0)), np.float32(1.0))
            if have_prev:
                p = prev[i, j]
                k = tk * max(np.float32(1.0) - abs(m - p) * np.float32(4.0), np.float32(0.0))
                m += k * (p - m)
            out[i, j] = m
            prev[i, j] = m


@njit(cache=True, nogil=True)
def _box_mean(src, r, integ, out):
    """Mean over a (2r+1)^2 window with clamped edges (window shrinks at borders)."""
    h, w = src.shape
    for i in range(h + 1):
        integ[i, 0] = 0.0
    for j in range(w + 1):
        integ[0, j] = 0.0
    for i in range(h):
        row = 0.0
        for j in range(w):
            row += src[i, j]
            integ[i + 1, j + 1] = integ[i, j + 1] + row
    for i in range(h):
        i0 = max(i - r, 0)
        i1 = min(i + r + 1, h)
        for j in range(w):
            j0 = max(j - r, 0)
            j1 = min(j + r + 1, w)
            s = integ[i1, j1] - integ[i0, j1] - integ[i1, j0] + integ[i0, j0]
            out[i, j] = s / ((i1 - i0) * (j1 - j0))


@njit(cache=True, nogil=True)
def guided_lowres(lum, p, r, eps, t0, t1, t2, t3, integ, ma, mb):
    """Guided filter (He et al.) of mask ``p`` by ``lum`` at model resolution; gives the
    smoothed linear coefficients ``ma, mb`` so that alpha = ma * Y + mb at full res."""
    h, w = p.shape
    _box_mean(lum, r, integ, t0)  # mean I
    _box_mean(p, r, integ, t1)  # mean p
    for i in range(h):
        for j in range(w):
            t2[i, j] = lum[i, j] * lum[i, j]
            t3[i, j] = lum[i, j] * p[i, j]
    _box_mean(t2, r, integ, ma)  # mean II
    _box_mean(t3, r, integ, mb)  # mean Ip
    for i in range(h):
        for j in range(w):
            var = ma[i, j] - t0[i, j] * t0[i, j]
            cov = mb[i, j] - t0[i, j] * t1[i, j]
            a = cov / (var + eps)
            t2[i, j] = a
            t3[i, j] = t1[i, j] - a * t0[i, j]
    _box_mean(t2, r, integ, ma)
    _box_mean(t3, r, integ, mb)
    for i in range(h):  # snap round-off so flat regions are exactly "all 0" / "all 1"
        for j in range(w):
            if abs(ma[i, j]) < 1e-6:
                ma[i, j] = 0.0
                if abs(mb[i, j]) < 1e-4:
                    mb[i, j] = 0.0
                elif abs(mb[i, j] - 1.0) < 1e-4:
                    mb[i, j] = 1.0


@njit(cache=True, nogil=True)
def _seg_row(ma, mb, g0, g1, wy, ra, rb, st):
    """Interpolate the coefficient rows g0/g1 by wy into ra/rb; st: 0 alpha 0, 1 alpha 1, 2 else."""
    for c in range(ma.shape[1]):
        a = ma[g0, c] + (ma[g1, c] - ma[g0, c]) * wy
        b = mb[g0, c] + (mb[g1, c] - mb[g0, c]) * wy
        ra[c] = a
        rb[c] = b
        st[c] = 0 if (a == 0.0 and b <= 0.0) else (1 if (a == 0.0 and b >= 1.0) else 2)


@njit(cache=True, nogil=True)
def seg_i420_rows(r0, r1, fg, bg, ma, mb, tables, scratch, sst, out, alpha, want_alpha):
    """Composite chroma rows [r0, r1) with alpha = bilinear(ma) * Y + bilinear(mb).

    ``fg``, ``bg``, ``out`` are Planes; ``tables`` (Tables) map pixels into the model grid.
    ``scratch`` (4, mw) float32 and ``sst`` (2, mw) uint8 hold the two luma rows'
    coefficients at model width; blocks whose coefficients say "all 0" or "all 1" copy.
    """
    y, u, v = fg
    by, bu, bv = bg
    oy, ou, ov = out
    ty0, ty1, twy, tx0, tx1, twx = tables
    h, w = y.shape
    cw = u.shape[1]
    for i in range(r0, r1):
        ya = 2 * i
        yb = min(ya + 1, h - 1)
        _seg_row(ma, mb, ty0[ya], ty1[ya], twy[ya], scratch[0], scratch[1], sst[0])
        _seg_row(ma, mb, ty0[yb], ty1[yb], twy[yb], scratch[2], scratch[3], sst[1])
        for j in range(cw):
            xa = 2 * j
            xb = min(xa + 1, w - 1)
            c0 = tx0[xa]
            c1 = tx1[xb]
            s = sst[0, c0]
            pure = s != 2
            if pure:
                for c in range(c0, c1 + 1):
                    if sst[0, c] != s or sst[1, c] != s:
                        pure = False
                        break
            if pure:
                if s == 0:
                    oy[ya, xa] = by[ya, xa]
                    oy[ya, xb] = by[ya, xb]
                    oy[yb, xa] = by[yb, xa]
                    oy[yb, xb] = by[yb, xb]
                    ou[i, j] = bu[i, j]
                    ov[i, j] = bv[i, j]
                else:
                    oy[ya, xa] = y[ya, xa]
                    oy[ya, xb] = y[ya, xb]
                    oy[yb, xa] = y[yb, xa]
                    oy[yb, xb] = y[yb, xb]
                    ou[i, j] = u[i, j]
                    ov[i, j] = v[i, j]
                if want_alpha:
                    av = 0 if s == 0 else 255
                    alpha[ya, xa] = av
                    alpha[ya, xb] = av
                    alpha[yb, xa] = av
                    alpha[yb, xb] = av
                continue
            asum = 0.0
            for di in range(2):
                yy = ya if di == 0 else yb
                ra = scratch[2 * di]
                rb = scratch[2 * di + 1]
                for dj in range(2):
                    xx = xa if dj == 0 else xb
                    h0 = tx0[xx]
                    h1 = tx1[xx]
                    wx = twx[xx]
                    ga = ra[h0] + (ra[h1] - ra[h0]) * wx
                    gb = rb[h0] + (rb[h1] - rb[h0]) * wx
                    fy = np.float64(y[yy, xx])
                    a = _clamp01(ga * fy + gb)
                    if a < 0.004:
                        a = 0.0
                    elif a > 0.996:
                        a = 1.0
                    asum += a
                    if want_alpha:
                        alpha[yy, xx] = _u8(a * 255.0)
                    oy[yy, xx] = _u8(np.float64(by[yy, xx]) + a * (fy - by[yy, xx]))
            ac = asum * 0.25
            ou[i, j] = _u8(np.float64(bu[i, j]) + ac * (np.float64(u[i, j]) - bu[i, j]))
            ov[i, j] = _u8(np.float64(bv[i, j]) + ac * (np.float64(v[i, j]) - bv[i, j]))


@njit(cache=True, nogil=True, parallel=True)
def seg_i420_par(chunks, fg, bg, ma, mb, tables, scratch, sst, out, alpha, want_alpha):
    """``scratch`` (chunks, 4, mw) and ``sst`` (chunks, 2, mw): one set per chunk."""
    ch = fg.u.shape[0]
    step = (ch + chunks - 1) // chunks
    for c in prange(chunks):
        seg_i420_rows(
            c * step, min(ch, (c + 1) * step), fg, bg, ma, mb, tables, scratch[c], sst[c],
            out, alpha, want_alpha,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def seg_rgb_rows(r0, r1, fg, bg, lumw, ma, mb, tables, out, alpha, want_alpha):
    """RGB twin of ``seg_i420_rows``; guidance is BT.601 limited-range luma."""
    ty0, ty1, twy, tx0, tx1, twx = tables
    w = fg.shape[1]
    for i in range(r0, r1):
        g0 = ty0[i]
        g1 = ty1[i]
        wy = twy[i]
        for j in range(w):
            h0 = tx0[j]
            h1 = tx1[j]
            wx = twx[j]
            at = ma[g0, h0] + (ma[g0, h1] - ma[g0, h0]) * wx
            ab = ma[g1, h0] + (ma[g1, h1] - ma[g1, h0]) * wx
            bt = mb[g0, h0] + (mb[g0, h1] - mb[g0, h0]) * wx
            bb = mb[g1, h0] + (mb[g1, h1] - mb[g1, h0]) * wx
            fy = 16.0 + lumw[0] * fg[i, j, 0] + lumw[1] * fg[i, j, 1] + lumw[2] * fg[i, j, 2]
            a = _clamp01((at + (ab - at) * wy) * fy + bt + (bb - bt) * wy)
            if a < 0.004:
                a = 0.0
            elif a > 0.996:
                a = 1.0
            if want_alpha:
                alpha[i, j] = _u8(a * 255.0)
            for c in range(3):
                out[i, j, c] = _u8(
                    np.float64(bg[i, j, c]) + a * (np.float64(fg[i, j, c]) - bg[i, j, c])
                )


# --------------------------------------------------------------------------- blur background


@njit(cache=True, nogil=True)
def downscale_box(src, f, out, rowbuf):
    """Mean of each f x f block (partial blocks at the edges) into a float plane.

    Rows are summed into ``rowbuf`` (W,) float32 first, a loop that vectorises.
    """
    h, w = src.shape
    oh, ow = out.shape
    for i in range(oh):
        i0 = i * f
        i1 = min(i0 + f, h)
        for j in range(w):
            rowbuf[j] = 0.0
        for ii in range(i0, i1):
            for j in range(w):
                rowbuf[j] += np.float32(src[ii, j])
        for j in range(ow):
            j0 = j * f
            j1 = min(j0 + f, w)
            s = np.float32(0.0)
            for jj in range(j0, j1):
                s += rowbuf[jj]
            out[i, j] = s / ((i1 - i0) * (j1 - j0))


@njit(cache=True, nogil=True)
def box_blur(src, r, tmp, out):
    """Separable running-sum box blur of radius r with clamped edges (float planes)."""
    h, w = src.shape
    n = 2 * r + 1
    for i in range(h):
        s = 0.0
        for k in range(-r, r + 1):
            s += src[i, min(max(k, 0), w - 1)]
        for j in range(w):
            tmp[i, j] = s / n
            s += src[i, min(j + r + 1, w - 1)] - src[i, max(j - r, 0)]
    for j in range(w):
        s = 0.0
        for k in range(-r, r + 1):
            s += tmp[min(max(k, 0), h - 1), j]
        for i in range(h):
            out[i, j] = s / n
            s += tmp[min(i + r + 1, h - 1), j] - tmp[max(i - r, 0), j]


def _store(out, i, j, v):
    """out[i, j] = v, rounded and clamped when ``out`` holds integers (typed in ``_store_impl``)."""
    out[i, j] = v


@overload(_store, inline="always")
def _store_impl(out, i, j, v):
    if isinstance(out.dtype, types.Integer):

        def store_int(out, i, j, v):
            out[i, j] = np.uint8(min(max(v + np.float32(0.5), np.float32(0.0)), np.float32(255.0)))

        return store_int

    def store_float(out, i, j, v):
        out[i, j] = v

    return store_float


@njit(cache=True, nogil=True)
def resize_bilinear(src, out, tmp):
    """Centre-aligned bilinear resize of a small float plane into a float32 or uint8 plane.

    Separable: columns into ``tmp`` (src rows x out cols, float32), then rows (vectorised).
    """
    sh, sw = src.shape
    oh, ow = out.shape
    fx = sw / ow
    for j in range(ow):  # each output column's source columns and weight, once
        sx = max((j + 0.5) * fx - 0.5, 0.0)
        x0 = min(int(sx), sw - 1)
        x1 = min(x0 + 1, sw - 1)
        wx = np.float32(sx - x0)
        for i in range(sh):
            tmp[i, j] = src[i, x0] + (src[i, x1] - src[i, x0]) * wx
    fy = sh / oh
    for i in range(oh):
        sy = (i + 0.5) * fy - 0.5
        if sy < 0.0:
            sy = 0.0
        y0 = min(int(sy), sh - 1)
        y1 = min(y0 + 1, sh - 1)
        wy = np.float32(sy - y0)
        for j in range(ow):
            _store(out, i, j, tmp[y0, j] + (tmp[y1, j] - tmp[y0, j]) * wy)
