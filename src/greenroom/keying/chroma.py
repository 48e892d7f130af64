"""``ChromaKeyer``: the compositing equation solved against a clean plate and the local foreground.

A pixel ``C`` at a soft edge is a mix ``C = a F + (1 - a) S`` of the foreground ``F`` and
the screen ``S`` behind it. The keyer estimates ``S`` per region (the clean plate,
re-estimated every few frames from confident screen pixels, so uneven light is keyed as
screen) and ``F`` per region every frame (the foreground plate: the colour of nearby
solid avatar pixels), and solves for ``a`` on chroma: ``a = (S - C).(S - F) / |S - F|^2``.
A linear mix therefore gets the linear alpha, a shirt near the key hue gets alpha 1 (its
own colour is its ``F``), and faint hair keeps its small alpha above the noise floor.

Compositing unmixes: ``out = C - (1 - a) S + (1 - a) B`` is ``a F + (1 - a) B`` with the
screen taken out. The unmixed foreground's colour difference is bounded on both sides by
the local foreground's (spill above it is removed, over-subtraction below it is put back),
so edges neither stay green nor turn magenta. One fused pass per pixel.

On I420 the chroma is half resolution, so alpha is found at chroma resolution and then
carried to full resolution by a local linear model on luma (a guided filter over 3x3
chroma windows): edges follow the sharp luma instead of the blocky 4:2:0 chroma.
"""

from __future__ import annotations

import functools
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
#: Alpha stays 0 until the pull away from the screen exceeds NOISE_CLIP standard
#: deviations of the screen's chroma noise (at least NOISE_MIN chroma levels).
NOISE_CLIP = 3.0
NOISE_MIN = 3.0
#: ... but from NOISE_CLIP_CLEAN (at least NOISE_MIN_CLEAN levels) on the I420 path on clean
#: footage: there the 2x2 chroma key is the last word on faint detail (the guided model only
#: spreads it by luma), and a hair strand one pixel wide pulls a 2x2 sample by a quarter of
#: its own pull. (The RGB path keys such pixels on their own chroma, ``_run_rgb``.)
NOISE_CLIP_CLEAN = 2.0
NOISE_MIN_CLEAN = 2.0
#: A sample is clean screen when its chroma lies within SCREEN_RADIUS x |key chroma| of
#: the key's; it is solid foreground (for the foreground plate) beyond FG_RADIUS x, and
#: the screen's noise is measured on the samples within FG_RADIUS x of the clean plate.
SCREEN_RADIUS = 0.28
FG_RADIUS = 0.4
#: A pixel SOLID_RADIUS x |key chroma| from the screen and OFF_LINE x |S - F| off the
#: screen-foreground line is another solid colour than the plate's (a shirt beside skin,
#: grey hair); nearer the line it is taken for one by a share that grows with the square
#: of its distance off the line (it was a switch at 0.35 until 2026-12-08).
SOLID_RADIUS = 0.4
OFF_LINE = 0.3
#: The unmixed foreground must be a colour (``K._gamut_floor``), forgiving GAMUT_MARGIN
#: levels plus GAMUT_SIGMA x the screen's chroma noise.
GAMUT_MARGIN = 4.0
GAMUT_SIGMA = 2.0
#: The least screen-to-foreground chroma distance the key divides by (x |key chroma|).
MIN_CONTRAST = 0.12
#: The clip points move in by this many times the screen's chroma noise (as a share of
#: |key chroma|): a noisy or compressed stream blurs hard edges into ramps as wide as its
#: noise, and most edges are hard, so its ramps are steepened; clean footage keeps its own.
NOISE_BLACK = 1.0
NOISE_WHITE = 2.0
#: The RGB path keys per pixel where a 2x2 block's pull exceeds this share of the floor.
WEAK_RGB = 0.75
#: I420: a screen sample (its own key 0) beside one keyed at least BLEED_NEIGHBOUR solid,
#: whose four luma pixels are within SCREEN_LUMA_TOL levels of the clean plate's, is all
#: screen (see ``K.screen_stays_screen``).
BLEED_NEIGHBOUR = 0.3
SCREEN_LUMA_TOL = 8.0
#: I420 edge model on clean footage (``K.guided_coeffs``): in windows whose alpha varies
#: by EDGE_SWING (variance) or more, its regularisation grows by EDGE_NOISE x the screen's
#: chroma noise variance (chroma levels², on 2x2 means; a pixel's luma carries about as
#: much noise as its chroma, so this is about 4x the 2x2 luma means' variance): where an
#: edge's luma steps are within the noise (skin as bright as the screen), the slope would
#: fit noise and shading. Faint hair (small swings) keeps its slope.
EDGE_NOISE = 16.0
EDGE_SWING = 0.05
#: ... and in its windows that reach below EDGE_BELOW (an edge towards the screen) the
#: model's line runs through each sample's own alpha, not the window's mean (inside the
#: avatar the mean lifts a near-key shirt's weaker samples).
EDGE_BELOW = 0.5
#: I420, edge samples beside solid ones (``K.solid_edges``): the white point moves
#: EDGE_LEVEL of the way from the clip's towards the solid neighbours' own solved mix, and
#: a sample keyed above SOLID_MIN_ALPHA whose four luma pixels all lie within SOLID_SHARE
#: x the contrast of its solid neighbours' mean luma, that contrast with the screen's
#: luma exceeding SOLID_CONTRAST levels, is solid.
EDGE_LEVEL = 0.5
SOLID_CONTRAST = 10.0
SOLID_SHARE = 0.2
SOLID_MIN_ALPHA = 0.5
#: Foreground plate: the reach of its box filter (cells of ``K.FG_CELL`` chroma samples),
#: and how many cells further a cell with no solid sample within reach takes its
#: neighbours' plate before the grey fallback (a finger or wisp away from the body is a mix
#: with the avatar's colour beside it, not with grey).
FG_REACH = 1
FG_FILL = 3
#: Clean footage: a solid sample counts towards the foreground plate only where its four
#: neighbours two samples away lie within FG_FLAT x |key chroma| of its own chroma
#: (``K.fg_accumulate``). Inside a ramp into the screen the samples are mixes; counted as
#: solid, they pulled the plate towards the screen and a linear ramp keyed about 0.1 high.
FG_FLAT = 0.06
#: Clean footage: samples on a wide, even ramp into the screen (motion blur, a soft edge)
#: keep most of the equation's linear alpha instead of the clip points' steepened one
#: (``K.linear_ramps``): an edge sample and its row or column neighbours partial beyond
#: RAMP_EPS, their curvature within RAMP_CURVE x their rise, the rise at least RAMP_RISE,
#: and the ramp falling by that slope (within RAMP_STEP_TOL of it) all the way to the
#: screen within RAMP_REACH samples; the even run above it (the ramp's top, keyed solid by
#: the clip) is marked too. A spill-lit or shaded solid rim, or an anti-aliased sharp edge,
#: also solves below 1, but its run is short or ends in the edge's jump, so it keeps the
#: clip. Marked samples go RAMP_SHARE of the way from the clipped alpha to the linear one:
#: spill on a blurred edge also pulls its mixes towards the screen, and the family's clean
#: MAD rose by a fifth (RGB path by a third) at the whole way.
RAMP_EPS = 0.03
RAMP_CURVE = 0.25
RAMP_RISE = 0.08
RAMP_STEP_TOL = 0.5
RAMP_REACH = 16
RAMP_SHARE = 0.65
#: Block-codec streams (``ChromaKeyer.block_codec`` > 0): VP8 pulls the chroma of a flat
#: near-key area (a green shirt on the bright green screen) within FG_RADIUS of the screen,
#: so the foreground plate found no solid sample there and the shirt keyed half-transparent
#: against the grey fallback, or against a plate averaged with the skin beside it. Cells
#: without a solid sample within reach take a second look for flat samples (neighbours two
#: samples away within FLAT_TOL x |key chroma|) beyond FLAT_RADIUS x |key chroma|
#: (``K.fg_accumulate_flat``); and a sample beyond SOLID_FLAT x |key chroma| whose four
#: neighbours lie within SOLID_FLAT_TOL x |key chroma| of it is solid (``K.flat_solid``).
#: Clean footage keys as before (its edge ramps, up to 32 px of motion blur, can be flat
#: over a sample).
FLAT_RADIUS = 0.2
FLAT_TOL = 0.08
SOLID_FLAT = 0.3
SOLID_FLAT_TOL = 0.06
#: Frames at the start of a stream (or after a size change) with both plates refreshed
#: on every frame.
WARMUP = 4
#: Clean plate, second look: in cells without screen near the key, samples within
#: PLATE_GROW x SCREEN_RADIUS of the screen found around them count as screen.
PLATE_GROW = 0.5
#: I420 after a block codec (VP8, H.264): its chroma is blurred across edges by 4:2:0 and
#: the codec (alpha ramps ~1.5x as wide as clean, yet the truth is as sharp), not noisy
#: (it flattens the screen, so the noise shift above barely acts). Such a stream is
#: recognised by the block grid its flat areas keep (``K.block_grid``: the largest mean
#: neighbour step over the 8 column phases against their median, CODEC_GRID[0] -> not a
#: codec, CODEC_GRID[1] -> fully one) and its clip points move in by CODEC_BLACK and
#: CODEC_WHITE: its ramps are steepened. Clean footage (ratio 1.00-1.12) keeps its own.
#: The ramp width itself cannot tell: motion blur widens clean ramps as much.
CODEC_BLACK = 0.12
CODEC_WHITE = 0.08
CODEC_GRID = (1.15, 1.4)
#: Block-codec streams, the guided model (``K.guided_coeffs``): each 3x3 window also holds
#: GUIDE_ANCHOR samples of the screen's own luma at alpha 0, and a sample keyed near 0 or 1
#: weighs up to 1 + GUIDE_PLATEAU times one on the ramp between (both scaled by the codec
#: level; clean footage gets the plain fit). VP8's chroma ramps are about as blurred as
#: clean chroma under a Gaussian of 1.2 samples, so the luma, known on the screen side and
#: seen on the solid side, decides more of where the edge lies.
GUIDE_ANCHOR = 1.0
GUIDE_PLATEAU = 0.5
#: How much the codec blurred chroma beyond luma: the mean R^2 of the guided model's fit
#: on the edge windows of even rows (``K.guided_coeffs``, on the chroma key's own alpha,
#: smoothed by FIT_RATE over frames with FIT_MIN such windows) is about 0.93 on clean
#: renders, 0.81-0.95 after H.264 and 0.73-0.90 after VP8 on the family. From FIT_GOOD down to FIT_POOR the clip points move in by up
#: to FIT_BLACK and FIT_WHITE more (times the codec level): the worse luma explains the
#: chroma's alpha, the wider the codec's ramps are against the true edge. Motion blur
#: widens luma and chroma alike and does not lower the fit.
FIT_GOOD = 0.9
FIT_POOR = 0.78
FIT_BLACK = 0.12
FIT_WHITE = 0.04
FIT_MIN = 25
FIT_RATE = 0.25
#: Block-codec streams, the luma key (``K.luma_key``): an edge sample's alpha leans
#: towards (Y - screen Y) / (foreground Y - screen Y), the foreground's luma being the mean
#: of the solid samples within LUMA_REACH cells of ``K.FG_CELL`` chroma samples (LUMA_FAR
#: cells where none is nearer).
#: Its weight grows from 0 to the codec level as the luma contrast, less LUMA_TEXTURE
#: times the foreground's own luma spread, grows from LUMA_C0 to LUMA_C1 levels; its alpha
#: is mapped LUMA_UNCLIP of the way onto the clip points' scale (they steepen it less).
LUMA_C0 = 5.0
LUMA_C1 = 35.0
LUMA_TEXTURE = 3.0
LUMA_REACH = 1
LUMA_FAR = 2
LUMA_UNCLIP = 0.7
#: Block-codec streams, moving edges (``K.motion_soften``): over each cell of
#: ``K.FG_CELL`` chroma samples with edge samples, the summed |luma change| since last
#: frame over the summed luma steps between neighbours (at least MOTION_GRAD levels a
#: sample) is how far the edge moved, in samples. From MOTION_T0 to MOTION_T1 samples a
#: frame the key of its edge samples is mapped back onto the clip points without the
#: codec's and the fit's steepening: a moving edge's true ramp is its motion blur, as
#: wide as the codec's; static edges, sharp in truth, keep it.
MOTION_GRAD = 4.0
MOTION_T0 = 0.25
MOTION_T1 = 1.0
#: ... and the guided model's regularisation there grows by up to MOTION_EPS (luma
#: levels², times the codec level): the codec smears a moving edge's luma too.
MOTION_EPS = 30.0
#: A codec level that has decayed below CODEC_OFF (one odd reading on clean footage, some
#: refreshes ago) is 0 again.
CODEC_OFF = 0.01
#: The block grid is measured on every GRID_ROWS-th luma row (half as many chroma rows),
#: on the frames that refresh the clean plate.
GRID_ROWS = 16
#: Steps of GRID_STEP levels or more between neighbours are edges or texture, not blocks.
GRID_STEP = 12
#: A codec's flat areas keep 0.13-0.4 levels of mean ripple at every phase.
GRID_FLOOR = 0.05


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


def _grid_ratio(sums: np.ndarray) -> float:
    """``K.block_grid``'s sums -> the largest phase's mean step over the median phase's
    (1 without a block grid). A picture whose median phase has under GRID_FLOOR levels
    of ripple is noiselessly flat (a drawing): its few steps are no grid."""
    d = sums[:8] / np.maximum(sums[8:], 1.0)
    med = float(np.median(d))
    if med < GRID_FLOOR:
        return 1.0
    return float((d.max() + 0.1) / (med + 0.1))


def _chroma(rgb: tuple[float, float, float] | np.ndarray) -> tuple[float, float]:
    """Centred (U, V) of an RGB colour."""
    c = np.asarray(rgb, np.float64)
    return float(c @ _U_W), float(c @ _V_W)


@functools.lru_cache(maxsize=16)
def _key_info(
    key: tuple[int, int, int],
) -> tuple[tuple[int, int, int], int, tuple[int, int], float]:
    """(key, its primary, the other two primaries, the length of its centred chroma):
    asked several times a frame, so computed once per colour."""
    prim = max(range(3), key=lambda c: key[c])
    q = tuple(c for c in range(3) if c != prim)
    return key, prim, (q[0], q[1]), float(np.hypot(*_chroma(key)))


class _Plate:
    """The clean plate: the screen's colour per region, kept at chroma resolution."""

    def __init__(self, width: int, height: int, cell: int):
        self.cw, self.ch = chroma_size(width, height)
        self.cell = cell
        self.gh = -(-self.ch // (cell // 2))
        self.gw = -(-self.cw // (cell // 2))
        self.grid: np.ndarray | None = None  # (gh, gw, 3) RGB float64
        self.noise = 1.0  # standard deviation of the screen's chroma along the key direction
        self.planes: dict[str, np.ndarray] = {}
        self.version = 0
        self.built: dict[str, int] = {}

    def update(self, sums: np.ndarray, fallback: tuple[int, int, int]) -> None:
        """New estimate from ``plate_accumulate``'s sums (Y, U, V), blended with the last."""
        counts = sums[..., 3]
        many = counts >= 8
        if many.any():
            n = counts[many]
            var = sums[many, 5] / n - (sums[many, 4] / n) ** 2
            noise = float(np.sqrt(max(float(np.median(var)), 0.0)))
            self.noise = noise if self.grid is None else 0.5 * (self.noise + noise)
        grid = self.filled(sums, fallback)
        if self.grid is not None:
            grid = self.grid + 0.5 * (grid - self.grid)
        self.grid = grid
        self.version += 1

    def filled(self, sums: np.ndarray, fallback: tuple[int, int, int]) -> np.ndarray:
        """(gh, gw, 3) RGB screen colour per cell from the sums; cells with fewer than 3
        samples take their neighbours' (``fallback`` when no cell has any)."""
        grid = np.empty((self.gh, self.gw, 3))
        valid = np.empty((self.gh, self.gw), np.uint8)
        K.plate_means(sums, _RGB_FROM_UV, grid, valid)
        K.plate_fill(grid, valid, np.asarray(fallback, np.float64))
        return grid

    def accumulate(
        self, frame: K.Planes, ystep: int, step: int, key: tuple[int, int, int], radius: float
    ) -> np.ndarray:
        """Sums of confident screen samples per cell: first near the key colour, then, in
        the cells that found none, near the screen found around them (at half the radius,
        so a near-key shirt beside the screen stays out). A screen that drifts from the
        key (a codec's shifted block column on a key frame, a dark corner) is still screen
        where it joins the screen next to it."""
        sums = np.zeros((self.gh, self.gw, 6))
        ku, kv = _chroma(key)
        shape = (self.gh, self.gw)
        r2 = radius * radius
        K.plate_accumulate(
            frame, ystep, self.cell // 2, step, np.full(shape, ku), np.full(shape, kv), r2,
            np.ones(shape, np.uint8), sums,
        )  # fmt: skip
        empty = sums[..., 3] < 3
        if empty.any() and not empty.all():
            near = self.filled(sums, key)
            K.plate_accumulate(
                frame, ystep, self.cell // 2, step, near @ _U_W, near @ _V_W, r2 * PLATE_GROW**2,
                empty.astype(np.uint8), sums,
            )  # fmt: skip
        return sums

    def get(self, *names: str) -> list[np.ndarray]:
        """Planes at chroma resolution: 'r', 'g', 'b', 'y' and centred 'u', 'v'."""
        assert self.grid is not None
        g = self.grid
        for name in names:
            if self.built.get(name) == self.version:
                continue
            if name in "rgb":
                src = g[..., "rgb".index(name)]
            elif name == "y":
                src = 16.0 + g @ _Y_W
            else:
                src = g @ (_U_W if name == "u" else _V_W)
            plane = self.planes.get(name)
            if plane is None:
                plane = self.planes[name] = np.empty((self.ch, self.cw), np.float32)
            tmp = np.empty((self.gh, self.cw), np.float32)
            K.resize_bilinear(np.ascontiguousarray(src, np.float32), plane, tmp)
            self.built[name] = self.version
        return [self.planes[n] for n in names]


class _FgPlate:
    """The local foreground's chroma per region, re-estimated every frame."""

    def __init__(self, cw: int, ch: int):
        self.gh = -(-ch // K.FG_CELL)
        self.gw = -(-cw // K.FG_CELL)
        self.sums = np.zeros((self.gh, self.gw, 3))
        self.tmp = np.empty((self.gh, self.gw, 3))
        self.grid = np.empty((self.gh, self.gw, 2), np.float32)  # U, V per cell
        self.fu = np.empty((ch, cw), np.float32)
        self.fv = np.empty((ch, cw), np.float32)
        self.rtmp = np.empty((self.gh, cw), np.float32)
        self.have = np.empty((self.gh, self.gw), np.uint8)
        self.resid = np.zeros(2)
        self.noise: float | None = None  # chroma noise of the screen around the plate

    def update(
        self,
        u: np.ndarray,
        v: np.ndarray,
        su: np.ndarray,
        sv: np.ndarray,
        thr: float,
        step: int,
        flat_thr: float = 0.0,
        flat_tol: float = 0.0,
        solid_flat: float = -1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Foreground samples lie beyond ``thr`` of the clean plate (chroma levels); the
        screen's noise is measured on the samples within it. With ``flat_thr`` > 0, cells
        left without a solid sample within reach also take flat patches beyond
        ``flat_thr`` (``flat_tol``: their flatness, see ``K.fg_accumulate_flat``). With
        ``solid_flat`` >= 0 a solid sample must itself be that flat (chroma levels)."""
        self.sums.fill(0.0)
        self.resid.fill(0.0)
        flat2 = solid_flat * solid_flat if solid_flat >= 0.0 else -1.0
        K.fg_accumulate(u, v, su, sv, thr * thr, flat2, K.FG_CELL, step, self.sums, self.resid)
        if flat_thr > 0.0:
            self._second_look(u, v, su, sv, flat_thr, flat_tol, step)
        if self.resid[1] >= 16:
            # mean distance of a 2-D Gaussian is 1.25 sigma
            noise = float(self.resid[0] / self.resid[1]) / 1.25
            # more noise is taken at once (a codec's blocks appear from one frame to the
            # next), less only slowly
            if self.noise is None or noise > self.noise:
                self.noise = noise
            else:
                self.noise += 0.2 * (noise - self.noise)
        K.fg_grid(self.sums, FG_REACH, self.tmp, self.grid, FG_FILL, self.have)
        K.resize_bilinear(self.grid[..., 0], self.fu, self.rtmp)
        K.resize_bilinear(self.grid[..., 1], self.fv, self.rtmp)
        return self.fu, self.fv

    def _second_look(
        self,
        u: np.ndarray,
        v: np.ndarray,
        su: np.ndarray,
        sv: np.ndarray,
        thr: float,
        tol: float,
        step: int,
    ) -> None:
        """Cells with no solid sample within the box filter's reach (``FG_REACH``) look
        again for flat patches beyond ``thr`` of the screen."""
        r = FG_REACH
        pad = np.pad(self.sums[..., 2], r)
        box = np.zeros((self.gh, self.gw))
        for di in range(2 * r + 1):
            for dj in range(2 * r + 1):
                box += pad[di : di + self.gh, dj : dj + self.gw]
        need = (box == 0).astype(np.uint8)
        if need.any():
            K.fg_accumulate_flat(
                u, v, su, sv, thr * thr, tol * tol, K.FG_CELL, step, need, self.sums
            )


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
        self._plate: _Plate | None = None  # the clean screen, per region (see reset)
        self._fg: _FgPlate | None = None  # the local foreground, per region
        self._i420_scratch: I420Frame | None = None
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

    @property
    def block_codec(self) -> float:
        """How strongly the I420 input shows a block codec's grid: 0 for a clean render, 1
        for VP8 or H.264 at live bit rates. The clip points move in by that much of
        ``CODEC_BLACK`` and ``CODEC_WHITE``. (RGB input takes its own reading, which only
        turns the clean-footage rules off: ``block_codec_rgb``.)"""
        return self._codec

    @property
    def block_codec_rgb(self) -> float:
        """The same reading on the RGB path's input (a decoded video frame, a JPEG)."""
        return self._codec_rgb

    def reset(self) -> None:
        """Forget temporal state and the clean plate."""
        self._plate = None
        self._fg = None
        self._step = 2
        self._sigma = 1.0
        self._codec = 0.0
        # the RGB path's own block-grid reading: decoded video keys without the clean
        # footage rules (its ramps are the codec's blur), the codec rules stay I420's
        self._codec_rgb = 0.0
        self._fit: float | None = None
        self._frames = 0
        self._prev: np.ndarray | None = None
        self._prev_kind = ""
        self._prev_fresh = False
        self._ylo_turn = 0  # which of two buffers holds this frame's luma_half
        self._bufs: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- internals
    def _noise_floor(self, fg: _FgPlate) -> tuple[float, float]:
        """(the screen's chroma noise sigma, the floor alpha stays 0 under), in chroma
        levels: the foreground plate's measure, the clean plate's before it has one."""
        assert self._plate is not None
        sigma = fg.noise if fg.noise is not None else self._plate.noise
        return sigma, max(NOISE_CLIP * sigma, NOISE_MIN)

    def _clean_plate(self) -> _Plate:
        """The clean plate, once the matte step of this frame has made it."""
        assert self._plate is not None, "the matte step makes the plate first"
        return self._plate

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[int, int]]:
        """(key colour, its primary, the other two primaries)."""
        return _key_info(self.key_color or DEFAULT_KEY)[:3]

    def _key_norm(self) -> float:
        """Length of the key colour's centred chroma, the unit of the keyer's radii."""
        return _key_info(self.key_color or DEFAULT_KEY)[3]

    def _buf(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        b = self._bufs.get(name)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self._bufs[name] = np.empty(shape, dtype)
        return b

    def _mismatch(self) -> float:
        """0..1: how poorly luma explains the codec stream's chroma alpha (``FIT_GOOD`` ->
        ``FIT_POOR``); 0 before a measure (and on clean footage, which takes none)."""
        if self._fit is None:
            return 0.0
        return min(max((FIT_GOOD - self._fit) / (FIT_GOOD - FIT_POOR), 0.0), 1.0)

    def _clip_points(self, codec: float | None = None) -> tuple[float, float]:
        """(black, white) clip points of this frame: the settings (``choke`` shifts both),
        moved in by the screen's measured noise (``NOISE_BLACK``, ``NOISE_WHITE``) and, on
        I420 through a block codec, by ``CODEC_BLACK``, ``CODEC_WHITE`` and, the worse luma
        explains the key there (``_mismatch``), up to ``FIT_BLACK``, ``FIT_WHITE`` more.
        ``codec``: the codec level to steepen by (default the stream's)."""
        p = self._params
        rel = self._sigma / max(self._key_norm(), 1.0)
        m = self._mismatch()
        cb = CODEC_BLACK + FIT_BLACK * m
        cw = CODEC_WHITE + FIT_WHITE * m
        level = self._codec if codec is None else codec
        lo = max(p.clip_black + p.choke, NOISE_BLACK * rel) + cb * level
        hi = min(p.clip_white + p.choke, 1.0) - NOISE_WHITE * rel - cw * level
        return lo, max(hi, lo + 0.05)

    def _luma_key(self) -> K.LumaKey:
        """``K.luma_key``'s settings for this frame: its weight is the codec level, and the
        luma key's alpha is mapped LUMA_UNCLIP of the way onto the clip points' scale (it
        is not blurred as the chroma key is, so it is steepened less)."""
        lo, hi = self._clip_points()
        f32 = np.float32
        return K.LumaKey(
            f32(self._codec),
            f32(LUMA_C0),
            f32(1.0 / (LUMA_C1 - LUMA_C0)),
            f32(LUMA_TEXTURE),
            LUMA_REACH,
            LUMA_FAR,
            f32(LUMA_UNCLIP * lo),
            f32(1.0 - LUMA_UNCLIP + LUMA_UNCLIP * (hi - lo)),
        )

    def _motion(self, prev_y: np.ndarray) -> K.Motion:
        """``K.motion_soften``'s settings for this frame: a moving sample's key is mapped
        from the clip points without the codec's steepening onto this frame's."""
        lo, hi = self._clip_points()
        lo0, hi0 = self._clip_points(0.0)
        gain = (hi - lo) / (hi0 - lo0)
        f32 = np.float32
        return K.Motion(
            prev_y,
            f32(MOTION_T0),
            f32(1.0 / (MOTION_T1 - MOTION_T0)),
            f32(self._codec),
            f32(lo - gain * lo0),
            f32(gain),
            f32(MOTION_GRAD),
        )

    def _codec_update(self, frame: I420Frame) -> None:
        """How much ``frame`` shows a block codec's grid, 0..1 (``CODEC_GRID``), into
        ``self._codec`` (smoothed over refreshes): how far the clip points move in. Measured
        while the stream settles and then on the clean plate's refresh frames."""
        level = self._grid_level(frame.y, frame.u, self._codec)
        if level is not None:
            self._codec = level

    def _grid_level(self, y: np.ndarray, u: np.ndarray, last: float) -> float | None:
        """The block-grid reading of a frame's luma plane (or (H, W, 3) RGB frame) and U
        plane, moved halfway from ``last``; None on the frames that take no reading."""
        n = self._frames
        if n >= WARMUP and n % self._params.plate_interval != 0:
            return None
        row = n % GRID_ROWS
        sums = np.zeros(16)
        K.block_grid(y, row, GRID_ROWS, GRID_STEP, sums)
        ratio = _grid_ratio(sums)
        sums.fill(0.0)
        K.block_grid(u, row // 2, GRID_ROWS // 2, GRID_STEP, sums)
        ratio = max(ratio, _grid_ratio(sums))
        lo, hi = CODEC_GRID
        c = min(max((ratio - lo) / (hi - lo), 0.0), 1.0)
        level = c if n == 0 else last + 0.5 * (c - last)
        return 0.0 if level < CODEC_OFF else level  # the flat-patch rules: off only at 0

    def _linear_ramps(
        self, lin: np.ndarray, a_lo: np.ndarray, cat: np.ndarray, clean: bool
    ) -> np.ndarray:
        """Clean footage (no block codec): marks and unclips the samples on wide linear
        ramps (``K.linear_ramps``); returns the uint8 mark plane (all 0 on codec streams,
        whose ramps are the codec's blur of sharp edges and keep the steepening)."""
        ramp, marks = self._ramp_planes(lin.shape)
        if not clean:
            K.unmark(ramp, marks)
            return ramp
        lo, hi = self._clip_points()
        f32 = np.float32
        rp = K.Ramp(
            f32(RAMP_EPS),
            f32(RAMP_CURVE),
            f32(RAMP_RISE),
            f32(lo),
            f32(hi - lo),
            f32(RAMP_STEP_TOL),
            RAMP_REACH,
            f32(RAMP_SHARE),
        )
        K.linear_ramps(lin, a_lo, cat, ramp, marks, rp)
        return ramp

    def _ramp_planes(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``linear_ramps``' mark plane (uint8, all 0 but the marks) and its list of marks."""
        ramp = self._bufs.get("ramp")
        if ramp is None or ramp.shape != shape:
            ramp = self._bufs["ramp"] = np.zeros(shape, np.uint8)
            self._bufs["marks"] = np.zeros(shape[0] * shape[1] + 1, np.int32)
        return ramp, self._bufs["marks"]

    def _clip(self) -> K.Clip:
        """Raw key -> alpha: linear from the black clip point to the white."""
        lo, hi = self._clip_points()
        return K.Clip(float(lo), 1.0 / (hi - lo))

    def _prev_buf(self, kind: str, shape: tuple[int, int], dtype: Any) -> tuple[np.ndarray, bool]:
        """Last frame's alpha for the temporal filter, and whether it may be read."""
        have = (
            self._prev is not None
            and self._prev_kind == kind
            and self._prev.shape == shape
            and self._prev_fresh
        )
        if self._prev is None or self._prev_kind != kind or self._prev.shape != shape:
            self._prev = np.zeros(shape, dtype)
            self._prev_kind = kind
        self._prev_fresh = self._params.temporal > 0
        return self._prev, have

    def _lowres(
        self,
        frame: K.Planes,
        ystep: int,
        size: tuple[int, int],
        sample_rgb: Callable[[], np.ndarray],
        temporal: K.Temporal,
        weak: float,
        clean: bool,
        ylo: np.ndarray,
        low_floor: bool = False,
    ) -> tuple[K.Matte, np.ndarray, np.ndarray]:
        """The key at chroma resolution: updates the plates, returns (matte, alpha, cat).

        ``frame`` holds U, V (and Y at ``ystep`` x the chroma position) of the picture,
        ``ylo`` its luma at chroma resolution (for the gamut floor, ``K.gamut_floor``);
        ``clean``: no block codec was seen in it (the foreground plate's flat rule);
        ``low_floor``: alpha starts from the lower noise floor (``NOISE_CLIP_CLEAN``).
        Lone edge samples are left to the caller (``K.despeckle`` or ``K.solid_edges``).
        """
        p = self._params
        w, h = size
        cw, ch = chroma_size(w, h)
        if self._plate is None or (self._plate.cw, self._plate.ch) != (cw, ch):
            self._plate = _Plate(w, h, p.plate_cell)
            self._fg = _FgPlate(cw, ch)
            self._frames = 0
            # sample the plates on a lattice of about 160 x 90 points (2 chroma samples apart
            # at 360p, 4 at 720p)
            self._step = max(2, min(cw // 160, ch // 90) // 2 * 2)
        key, _prim, _q = self._key()
        kn = self._key_norm()
        # while the stream settles (a codec's first frames after its key frame shift the
        # screen's colour and noise) both plates are refreshed every frame
        warm = self._frames < WARMUP
        if warm or self._frames % p.plate_interval == 0:
            if p.key_color is None and self._found_key is None:
                self._found_key = detect_key_color(sample_rgb())
                key, _prim, _q = self._key()
                kn = self._key_norm()
            plate = self._plate
            plate.update(plate.accumulate(frame, ystep, self._step, key, SCREEN_RADIUS * kn), key)
        # the foreground plate is refreshed on the frames between clean-plate refreshes
        # (every frame at plate_interval 1), so no frame pays for both
        fg_due = warm or self._frames % p.plate_interval == p.plate_interval // 2
        self._frames += 1
        su, sv = self._plate.get("u", "v")
        fg = self._fg
        assert fg is not None  # made with the clean plate above
        # the foreground plate also measures the screen's noise: on a refresh, this frame's
        # noise sets this frame's floor (a codec's first frames change it from one to the next)
        if fg_due:
            thr = max(FG_RADIUS * kn, 2.0 * self._noise_floor(fg)[1])
            codec = self._codec > 0.0  # the flat-patch rules: block-codec streams only
            flat_thr = FLAT_RADIUS * kn if codec else 0.0
            solid_flat = FG_FLAT * kn if clean else -1.0
            fg.update(
                frame.u, frame.v, su, sv, thr, self._step, flat_thr, FLAT_TOL * kn, solid_flat
            )
        self._sigma, noise = self._noise_floor(fg)
        if low_floor:
            noise = max(NOISE_CLIP_CLEAN * self._sigma, NOISE_MIN_CLEAN)
        fu, fv = fg.fu, fg.fv
        matte = K.Matte(
            su,
            sv,
            fu,
            fv,
            np.float32(noise**2),
            np.float32((MIN_CONTRAST * kn) ** 2),
            np.float32((SOLID_RADIUS * kn) ** 2),
            np.float32(OFF_LINE**2),
            self._buf("lin", (ch, cw), np.float32),
        )
        a_lo = self._buf("a_lo", (ch, cw), np.float32)
        cat = self._buf("cat", (ch, cw), np.uint8)
        full = self._clip_points()[1]
        K.key_lowres(frame.u, frame.v, matte, weak, full, temporal, a_lo, cat)
        margin = np.float32(GAMUT_MARGIN + GAMUT_SIGMA * self._sigma)
        screen = K.RgbPlate(*self._plate.get("r", "g", "b"))
        K.gamut_floor(cat, a_lo, matte.lin, ylo, frame.u, frame.v, screen, margin, full)
        if self._codec > 0.0:
            solid2 = np.float32((SOLID_FLAT * kn) ** 2)
            flat2 = np.float32((SOLID_FLAT_TOL * kn) ** 2)
            write_prev = bool(temporal.k > 0)
            K.flat_solid(
                frame.u,
                frame.v,
                su,
                sv,
                solid2,
                flat2,
                a_lo,
                matte.lin,
                cat,
                temporal.prev,
                write_prev,
            )
        return matte, a_lo, cat

    # ---------------------------------------------------------------- RGB path
    def _run_rgb(
        self, frame: np.ndarray, bg: np.ndarray | None, want_alpha: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        h, w = frame.shape[:2]
        cw, ch = chroma_size(w, h)
        f32 = np.float32
        with self._lock:
            p = self._params
            half = K.Planes(
                self._buf("half_y", (ch, cw), np.uint8),
                self._buf("half_u", (ch, cw), np.uint8),
                self._buf("half_v", (ch, cw), np.uint8),
            )
            K.rgb_half(frame, *half)
            no_temporal = K.Temporal(
                f32(0.0), f32(1.0), self._buf("no_prev", (1, 1), np.float32), False
            )
            level = self._grid_level(frame, half.u, self._codec_rgb)
            if level is not None:
                self._codec_rgb = level
            clean = self._codec_rgb == 0.0
            # a strand one pixel wide pulls its 2x2 mean below the floor: look closer there
            matte, a_lo, cat = self._lowres(
                half,
                1,
                (w, h),
                lambda: frame[::8, ::8],
                no_temporal,
                WEAK_RGB,
                clean,
                half.y,
            )
            K.despeckle(cat, a_lo)
            ramp = self._linear_ramps(matte.lin, a_lo, cat, clean)
            blk = self._buf("blk", (ch, cw), np.uint8)
            K.dilate_same(cat, self._buf("tmp", (ch, cw), np.uint8), blk)
            _, prim, _q = self._key()
            clip = self._clip()
            prev, have_prev = self._prev_buf("rgb", (h, w), np.uint8)
            alpha = np.empty((h, w), np.uint8) if want_alpha else NO_ALPHA
            out = (
                np.empty_like(frame)
                if bg is not None
                else self._buf("rgb_out", frame.shape, np.uint8)
            )
            # per-pixel chroma carries twice the noise of the 2x2 means measured (the floor
            # for codec blocks stays). Clean footage waives it: the per-pixel key only runs
            # where the 2x2 means found the avatar near (``blk`` 2), and there a strand one
            # pixel wide (hair, true alpha 0.05-0.2) pulls less than twice the noise, yet is
            # real; the black clip point still keeps the screen's noise out.
            floor = 0.0 if clean else max(2.0 * NOISE_CLIP * self._sigma, NOISE_MIN)
            args = (
                frame.reshape(h, 3 * w),
                (bg if bg is not None else out).reshape(h, 3 * w),
                blk,
                K.RgbRamp(ramp, f32(RAMP_SHARE)),
                matte._replace(k2=np.float32(floor**2)),
                K.RgbPlate(*self._clean_plate().get("r", "g", "b")),
                K.Primary(*(f32(prim == c) for c in range(3))),
                K.Clip(*(f32(x) for x in clip)),
                K.Temporal(f32(p.temporal), f32(1.0 / p.temporal_threshold), prev, have_prev),
                K.RgbDespill(f32(p.despill), f32(p.despill * p.despill_luma * _Y_W601[prim])),
                out.reshape(h, 3 * w),
                alpha,
                want_alpha,
            )
            threads = use_threads(p.threads)
            if threads > 1:
                K.chroma_rgb_par(threads * 4, *args)
            else:
                K.chroma_rgb_rows(0, h, *args)
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
        out = check_pair_i420(frame, background, out, alpha_out)
        self._run_i420(frame, background, out, alpha_out)
        return out

    def matte_i420(self, frame: I420Frame) -> np.ndarray:
        """(H, W) uint8 alpha of an I420 frame, 255 = avatar."""
        alpha = np.empty((frame.height, frame.width), np.uint8)
        scratch = self._i420_scratch
        if scratch is None or scratch.size != frame.size:
            scratch = self._i420_scratch = I420Frame.empty(frame.width, frame.height)
        self._run_i420(frame, scratch, scratch, alpha)
        return alpha

    def _run_i420(
        self, frame: I420Frame, bg: I420Frame, out: I420Frame, alpha: np.ndarray | None
    ) -> None:
        w, h = frame.size
        cw, ch = chroma_size(w, h)
        f32 = np.float32
        planes = frame.planes
        with self._lock:
            p = self._params

            def sample() -> np.ndarray:
                return yuv_samples_to_rgb(frame.y[::8, ::8], frame.u[::4, ::4], frame.v[::4, ::4])

            prev, have_prev = self._prev_buf("i420", (ch, cw), np.float32)
            self._codec_update(frame)
            temporal = K.Temporal(f32(p.temporal), f32(1.0 / p.temporal_threshold), prev, have_prev)
            no_codec = self._codec == 0.0
            # luma at chroma resolution, this frame's and last frame's in turn
            turn = self._ylo_turn
            ylo = self._buf(f"ylo{turn}", (ch, cw), np.float32)
            # the other holds last frame's (none after a reset, which empties the buffers)
            ylo_last = self._bufs.get(f"ylo{1 - turn}")
            if ylo_last is not None and ylo_last.shape != ylo.shape:
                ylo_last = None
            K.luma_half(frame.y, ylo)
            self._ylo_turn = 1 - turn
            matte, a_lo, cat = self._lowres(
                planes, 2, (w, h), sample, temporal, 1.0, no_codec, ylo, low_floor=no_codec
            )
            _, prim, q = self._key()
            axis = K.KeyAxis(*self._uv_coeffs(prim, q))
            tmp = self._buf("tmp", (ch, cw), np.uint8)
            kind = self._buf("kind", (ch, cw), np.uint8)
            blk = self._buf("blk", (ch, cw), np.uint8)
            ca = self._buf("ca", (ch, cw), np.float32)
            cb = self._buf("cb", (ch, cw), np.float32)
            (sy,) = self._clean_plate().get("y")
            lo, hi = self._clip_points()
            self._linear_ramps(matte.lin, a_lo, cat, no_codec)
            se = K.SolidEdge(lo, hi, EDGE_LEVEL, SOLID_CONTRAST, SOLID_SHARE, SOLID_MIN_ALPHA)
            cols = self._buf("se_cols", (2, cw + 1), np.int32)
            # despeckles too
            K.solid_edges(cat, a_lo, matte.lin, frame.y, ylo, sy, se, cols)
            K.dilate_same(cat, tmp, kind)
            # clean footage: at edges the edge model's line runs through each sample's own
            # alpha, and its slope is damped by the luma noise (a block codec keeps the
            # classic filter)
            clean = 1.0 - self._codec
            noise = (clean * EDGE_NOISE * self._sigma**2, 1.0 / EDGE_SWING)
            fit = self._buf("fit", (2,), np.float64)
            fit.fill(0.0)
            fit_alpha = a_lo
            gh, gw = -(-ch // K.FG_CELL), -(-cw // K.FG_CELL)
            # each cell's motion weight (none measured: 0)
            mcells = self._buf("mo_cells", (gh, gw), np.float32)
            mcells.fill(0.0)
            if self._codec > 0.0:
                fit_alpha = self._buf("a_chroma", (ch, cw), np.float32)
                sums = self._buf("lk_sums", (3, gh, gw), np.float64)
                cells = self._buf("lk_cells", (2, gh, gw), np.float64)
                K.luma_key(ylo, sy, cat, a_lo, fit_alpha, self._luma_key(), sums, cells)
                if ylo_last is not None:
                    K.motion_soften(ylo, kind, a_lo, matte.lin, self._motion(ylo_last), mcells)
            codec = K.Codec(
                sy,
                GUIDE_ANCHOR * self._codec,
                GUIDE_PLATEAU * self._codec,
                fit,
                fit_alpha,
                mcells,
                np.float32(MOTION_EPS),
            )
            K.guided_coeffs(a_lo, p.edge_eps, noise, clean, EDGE_BELOW, kind, ca, cb, ylo, codec)
            if self._codec > 0.0 and fit[1] >= FIT_MIN:
                r2 = float(fit[0] / fit[1])
                self._fit = r2 if self._fit is None else self._fit + FIT_RATE * (r2 - self._fit)
            K.dilate_same(kind, tmp, blk)
            K.screen_stays_screen(
                cat,
                a_lo,
                frame.y,
                sy,
                np.float32(BLEED_NEIGHBOUR),
                np.float32(SCREEN_LUMA_TOL),
                blk,
            )
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
                sy,
                matte,
                axis,
                despill,
                self._clip(),
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
