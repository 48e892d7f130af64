"""A seeded family of green/blue-screen avatar clips with exact alpha, for judging keyers.

Independent of ``keying.synthetic``'s look: each clip draws its own screen colour (the
greens and blues real avatars use), uneven light with 10-14 % falloff, skin, shirt and hair
colours (near-key shirts included: teal, olive, green), a waving hand with thin fingers,
wisps of hair whose true alpha is 0.05-0.2, motion (slow sway or fast moves) and noise.

The picture is rendered by point sampling: per pixel 4x4 positions times ``T`` instants
inside the shutter (motion blur). Every sample is either screen or a stack of foreground
layers (some semi-transparent, like hair), so the true alpha is the average coverage and the
colour the matching linear mix: ``I = sum(fg premultiplied) / N + (1 - alpha) S`` with ``S``
the lit screen at that pixel. The truth therefore holds exactly for the very image rendered,
motion blur included; only noise and 8-bit rounding come after.

    specs = family_specs(24, seed=1)
    clip = render_clip(specs[0])       # clip.frames: RGB uint8, clip.alphas: float32 in [0, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

#: Screen colours across what avatars are rendered on. The vendor renders vary per avatar,
#: so each clip also jitters its screen a little around the family's colour.
SCREENS: dict[str, tuple[int, int, int]] = {
    "avatar-green": (38, 200, 72),  # bright render green, as avatar videos come
    "chroma-green": (0, 177, 64),  # #00B140, the chroma-key paint/fabric green
    "digital-green": (16, 236, 40),  # #00FF00-ish, after a camera/encoder's range
    "dark-green": (30, 140, 60),  # an under-lit fabric screen
    "blue-screen": (20, 70, 190),  # chroma-key blue
}
#: Shirt colours: ordinary ones and near-key hues that a keyer must not punch holes into.
SHIRTS: dict[str, tuple[int, int, int]] = {
    "navy": (40, 48, 96),
    "white": (225, 226, 222),
    "black": (28, 28, 30),
    "red": (170, 40, 44),
    "teal": (30, 128, 128),
    "olive": (110, 120, 50),
    "green": (60, 130, 70),
    "light-blue": (120, 160, 210),
}
NEAR_KEY = frozenset({"teal", "olive", "green"})
SKINS = ((236, 200, 170), (205, 150, 125), (160, 110, 80), (110, 72, 50))
HAIRS = ((30, 24, 20), (90, 60, 35), (200, 170, 110), (150, 150, 150), (120, 50, 25))

# A primitive is one row of floats: KIND, geometry (7), colour (3), opacity, shade, spill.
_ELLIPSE, _CAPSULE = 0.0, 1.0
_NF = 14


@dataclass(frozen=True)
class ClipSpec:
    """Everything that makes one clip; ``render_clip`` turns it into frames."""

    name: str
    seed: int
    screen_name: str
    screen: tuple[int, int, int]
    shirt_name: str
    shirt: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    falloff: float  # the corners are this much darker than the brightest spot
    light_centre: tuple[float, float]  # brightest spot, in frame fractions
    tilt: float  # extra left-right light gradient (fraction)
    spill: float  # screen light wrapped onto the figure's edge
    noise: float  # sensor noise sigma, 8-bit levels
    fast: bool  # fast motion: the figure lurches and the hand waves quickly
    hand: bool
    wisps: int  # groups of faint hair strands
    width: int = 640
    height: int = 360
    frames: int = 6
    fps: float = 30.0
    shutter: float = 0.5  # fraction of the frame interval the shutter is open

    @property
    def near_key_shirt(self) -> bool:
        return self.shirt_name in NEAR_KEY

    @property
    def family(self) -> str:
        """The screen family: what a user would tune a keyer for once."""
        return self.screen_name


@dataclass
class Clip:
    """Rendered frames with their truth."""

    spec: ClipSpec
    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB
    alphas: list[np.ndarray]  # (H, W) float32 true alpha
    foregrounds: list[np.ndarray]  # (H, W, 3) float32 true foreground colour (no spill), 0..255
    screen: np.ndarray = field(repr=False)  # (H, W, 3) float32, the lit screen

    @property
    def key(self) -> tuple[int, int, int]:
        return self.spec.screen


def family_specs(
    n: int = 24, seed: int = 0, width: int = 640, height: int = 360, frames: int = 6
) -> list[ClipSpec]:
    """``n`` clip specs, stratified: screens and shirts cycle so every pairing appears."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 64, got {width}x{height}")
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    rng = np.random.default_rng(seed)
    screens = list(SCREENS)
    shirts = list(SHIRTS)
    out = []
    for i in range(n):
        sname = screens[i % len(screens)]
        # shirts advance by one every full round of screens, so pairings rotate; a shirt
        # more than half as screen-coloured as the screen itself is skipped (no keyer can
        # tell it from the screen by colour: green on dark green)
        for step in range(len(shirts)):
            hname = shirts[(i + i // len(screens) + step) % len(shirts)]
            if _key_excess(SHIRTS[hname], SCREENS[sname]) <= 0.5:
                break
        jitter = rng.integers(-8, 9, 3)
        screen = tuple(
            int(np.clip(c + j, 0, 255)) for c, j in zip(SCREENS[sname], jitter, strict=True)
        )
        fast = bool(i % 3 == 2)
        out.append(
            ClipSpec(
                name=f"c{i:02d}-{sname}-{hname}{'-fast' if fast else ''}",
                seed=int(rng.integers(0, 2**31 - 1)),
                screen_name=sname,
                screen=screen,  # type: ignore[arg-type]
                shirt_name=hname,
                shirt=SHIRTS[hname],
                skin=SKINS[int(rng.integers(len(SKINS)))],
                hair=HAIRS[int(rng.integers(len(HAIRS)))],
                falloff=float(rng.uniform(0.10, 0.14)),
                light_centre=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.25, 0.6))),
                tilt=float(rng.uniform(-0.05, 0.05)),
                spill=float(rng.uniform(0.1, 0.35)),
                noise=float(rng.uniform(1.0, 3.0)),
                fast=fast,
                hand=bool(i % 4 != 3),
                wisps=int(rng.integers(5, 10)),
                width=width,
                height=height,
                frames=frames,
            )
        )
    return out


def _key_excess(colour: tuple[int, int, int], screen: tuple[int, int, int]) -> float:
    """How screen-like ``colour`` is: its screen primary's excess over the other two, as a
    fraction of the screen's own (0 = not at all, 1 = as much as the screen)."""
    p = int(np.argmax(screen))
    q = [c for c in range(3) if c != p]
    d_screen = screen[p] - max(screen[q[0]], screen[q[1]])
    return max(colour[p] - max(colour[q[0]], colour[q[1]]), 0) / d_screen


# ------------------------------------------------------------------------------------ scene


@dataclass
class _Strand:
    """A curved hair strand in head-local units (head radii), as segments."""

    pts: np.ndarray  # (k, 2)
    width: float  # half width in pixels at 360 lines
    opacity: float


def _hair_strands(spec: ClipSpec, rng: np.random.Generator) -> list[_Strand]:
    strands = []
    for _ in range(spec.wisps):
        # a wisp: a few near-parallel faint strands leaving the upper head outline
        ang0 = rng.uniform(-math.pi * 0.92, -math.pi * 0.08)
        curl = rng.uniform(-1.0, 1.0)
        length = rng.uniform(0.25, 0.6)
        for _k in range(int(rng.integers(3, 6))):
            ang = ang0 + rng.uniform(-0.06, 0.06)
            a = ang + rng.uniform(-0.25, 0.25)
            x, y = math.cos(ang) * 0.98, math.sin(ang) * 0.98
            pts = [(x, y)]
            for _s in range(6):
                a += curl * 0.15 + rng.uniform(-0.05, 0.05)
                x += math.cos(a) * length / 6
                y += math.sin(a) * length / 6
                pts.append((x, y))
            strands.append(
                _Strand(np.array(pts), float(rng.uniform(0.35, 0.6)), float(rng.uniform(0.12, 0.3)))
            )
    return strands


def _ellipse(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    th: float,
    col: tuple[float, ...],
    op: float = 1.0,
    shade: float = 0.0,
    spill: float = 0.0,
    clip_v: float = 9.0,
) -> list[float]:
    """clip_v: keep only the part with local v < clip_v * ry (v points down when th = 0)."""
    return [_ELLIPSE, cx, cy, rx, ry, math.cos(th), math.sin(th), clip_v, *col, op, shade, spill]


def _capsule(
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    r0: float,
    r1: float,
    col: tuple[float, ...],
    op: float = 1.0,
    shade: float = 0.0,
    spill: float = 0.0,
) -> list[float]:
    return [_CAPSULE, x0, y0, x1, y1, r0, r1, 0.0, *col, op, shade, spill]


class _Scene:
    def __init__(self, spec: ClipSpec):
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        self.strands = _hair_strands(spec, rng)
        self.phase = rng.uniform(0, 2 * math.pi, 6)
        self.side = 1.0 if rng.uniform() < 0.5 else -1.0  # which hand waves

    def prims(self, t: float) -> np.ndarray:
        """All primitives at time ``t`` (seconds), back to front: (P, _NF)."""
        sp = self.spec
        w, h = sp.width, sp.height
        s = h / 360.0
        ph = self.phase
        amp, per = (60.0, 0.9) if sp.fast else (22.0, 3.0)
        bx = w * 0.5 + amp * s * math.sin(2 * math.pi * t / per + ph[0])
        lean = (0.10 if sp.fast else 0.05) * math.sin(2 * math.pi * t / (per * 1.3) + ph[1])
        hx = bx + 120 * s * math.sin(lean)
        hy = h * 0.42 + (10 if sp.fast else 4) * s * math.sin(2 * math.pi * t / (per * 0.7) + ph[2])
        rx, ry = 50 * s, 64 * s
        top = h * 0.74
        skin = sp.skin
        neck = tuple(c * 0.88 for c in skin)
        rows: list[list[float]] = []
        spill = sp.spill
        # torso: a wide ellipse whose top is the shoulder line
        rows.append(
            _ellipse(bx, top + 140 * s, 165 * s, 140 * s, 0.0, sp.shirt, shade=0.18, spill=spill)
        )
        rows.append(
            _capsule(
                hx, hy + 40 * s, bx, top + 10 * s, 20 * s, 24 * s, neck, shade=0.15, spill=spill
            )
        )
        # hair behind the head down to the ears, the face, then a fringe in front
        rows.append(
            _ellipse(
                hx,
                hy - 6 * s,
                rx * 1.1,
                ry * 1.04,
                lean,
                sp.hair,
                shade=0.1,
                spill=spill,
                clip_v=0.3,
            )
        )
        rows.append(_ellipse(hx, hy, rx, ry, lean, skin, shade=0.12, spill=spill))
        rows.append(
            _ellipse(
                hx,
                hy - 6 * s,
                rx * 1.06,
                ry * 1.02,
                lean,
                sp.hair,
                shade=0.1,
                spill=spill,
                clip_v=-0.55,
            )
        )
        ct, st = math.cos(lean), math.sin(lean)
        for strand in self.strands:
            p = strand.pts
            u = p[:, 0] * rx * 1.06
            v = p[:, 1] * ry * 1.02
            xs = hx + u * ct - v * st
            ys = hy - 6 * s + u * st + v * ct
            r = strand.width * s
            for k in range(len(p) - 1):
                rk = r * (1.0 - 0.5 * k / len(p))
                rows.append(
                    _capsule(
                        xs[k],
                        ys[k],
                        xs[k + 1],
                        ys[k + 1],
                        rk,
                        rk * 0.92,
                        sp.hair,
                        op=strand.opacity,
                    )
                )
        if sp.hand:
            rows.extend(self._arm(t, bx, top, s))
        return np.array(rows, np.float64)

    def _arm(self, t: float, bx: float, top: float, s: float) -> list[list[float]]:
        sp = self.spec
        side = self.side
        ph = self.phase
        per = 0.45 if sp.fast else 1.1
        wave = (0.55 if sp.fast else 0.35) * math.sin(2 * math.pi * t / per + ph[3])
        sx = bx + side * 120 * s  # elbow rests near the shoulder's side
        sy = top + 60 * s
        ex, ey = sx + side * 25 * s, sy - 5 * s
        fa = -math.pi / 2 + side * 0.35 + wave  # forearm angle: up, waving
        fl = 75 * s
        wx, wy = ex + fl * math.cos(fa), ey + fl * math.sin(fa)
        rows = [
            _capsule(sx, sy + 30 * s, ex, ey, 22 * s, 17 * s, sp.shirt, shade=0.15, spill=sp.spill),
            _capsule(ex, ey, wx, wy, 14 * s, 11 * s, sp.skin, shade=0.15, spill=sp.spill),
        ]
        # palm, then four thin fingers and a thumb fanning out from it
        px, py = wx + 10 * s * math.cos(fa), wy + 10 * s * math.sin(fa)
        rows.append(_ellipse(px, py, 15 * s, 13 * s, fa, sp.skin, shade=0.1, spill=sp.spill))
        for k, (da, ln) in enumerate(((-0.35, 24), (-0.12, 28), (0.1, 27), (0.32, 22))):
            a = fa + da
            bx0 = px + 11 * s * math.cos(fa) + (k - 1.5) * 6 * s * math.cos(fa + math.pi / 2)
            by0 = py + 11 * s * math.sin(fa) + (k - 1.5) * 6 * s * math.sin(fa + math.pi / 2)
            rows.append(
                _capsule(bx0, by0, bx0 + ln * s * math.cos(a), by0 + ln * s * math.sin(a),
                         3.2 * s, 2.4 * s, sp.skin, shade=0.2, spill=sp.spill)
            )  # fmt: skip
        ta = fa - side * 1.1
        rows.append(
            _capsule(px, py, px + 22 * s * math.cos(ta), py + 22 * s * math.sin(ta),
                     4.0 * s, 3.0 * s, sp.skin, shade=0.2, spill=sp.spill)
        )  # fmt: skip
        return rows


def _bbox(p: np.ndarray) -> np.ndarray:
    """(P, 4) x0, y0, x1, y1 of each primitive (generous)."""
    out = np.empty((len(p), 4))
    ell = p[:, 0] == _ELLIPSE
    r = np.maximum(p[:, 3], p[:, 4])
    out[ell, 0] = p[ell, 1] - r[ell]
    out[ell, 1] = p[ell, 2] - r[ell]
    out[ell, 2] = p[ell, 1] + r[ell]
    out[ell, 3] = p[ell, 2] + r[ell]
    cap = ~ell
    rc = np.maximum(p[cap, 5], p[cap, 6])
    out[cap, 0] = np.minimum(p[cap, 1], p[cap, 3]) - rc
    out[cap, 1] = np.minimum(p[cap, 2], p[cap, 4]) - rc
    out[cap, 2] = np.maximum(p[cap, 1], p[cap, 3]) + rc
    out[cap, 3] = np.maximum(p[cap, 2], p[cap, 4]) + rc
    return out


@njit(cache=True, nogil=True)
def _inside(p: np.ndarray, x: float, y: float) -> tuple[bool, float, float]:
    """(inside, signed distance (negative inside, px), shading coordinate -1..1)."""
    if p[0] == 0.0:
        dx = x - p[1]
        dy = y - p[2]
        u = dx * p[5] + dy * p[6]
        v = -dx * p[6] + dy * p[5]
        q = math.sqrt((u / p[3]) ** 2 + (v / p[4]) ** 2)
        sd = (q - 1.0) * min(p[3], p[4])
        cut = v - p[7] * p[4]
        if cut > sd:
            sd = cut
        return sd < 0.0, sd, u / p[3]
    x0, y0, x1, y1 = p[1], p[2], p[3], p[4]
    vx = x1 - x0
    vy = y1 - y0
    ll = vx * vx + vy * vy + 1e-12
    t = ((x - x0) * vx + (y - y0) * vy) / ll
    t = min(max(t, 0.0), 1.0)
    dx = x - (x0 + t * vx)
    dy = y - (y0 + t * vy)
    r = p[5] + t * (p[6] - p[5])
    dist = math.sqrt(dx * dx + dy * dy)
    side = (dx * vy - dy * vx) / math.sqrt(ll)
    return dist < r, dist - r, side / max(r, 1e-6)


@njit(cache=True, nogil=True)
def _shade(
    p: np.ndarray,
    sd: float,
    u: float,
    spill_w: float,
    s0: float,
    s1: float,
    s2: float,
    acc: np.ndarray,
) -> None:
    """Stack primitive ``p`` over the sample's layers in ``acc`` (a, premult x3, clean x3)."""
    op = p[11]
    sh = 1.0 - p[12] * u
    sp = p[13] * math.exp(sd / spill_w)
    r0 = p[8] * sh
    r1 = p[9] * sh
    r2 = p[10] * sh
    acc[1] = op * (r0 + sp * (s0 - r0)) + (1.0 - op) * acc[1]
    acc[2] = op * (r1 + sp * (s1 - r1)) + (1.0 - op) * acc[2]
    acc[3] = op * (r2 + sp * (s2 - r2)) + (1.0 - op) * acc[3]
    acc[4] = op * r0 + (1.0 - op) * acc[4]
    acc[5] = op * r1 + (1.0 - op) * acc[5]
    acc[6] = op * r2 + (1.0 - op) * acc[6]
    acc[0] = op + (1.0 - op) * acc[0]


@njit(cache=True, nogil=True)
def _render(
    prims: np.ndarray,
    boxes: np.ndarray,
    tile_idx: np.ndarray,
    tile_n: np.ndarray,
    tile: int,
    screen: np.ndarray,
    spill_w: float,
    alpha: np.ndarray,
    fg_pre: np.ndarray,
    fg_clean: np.ndarray,
) -> None:
    """prims (T, P, NF), boxes (T, P, 4), per-tile candidate lists -> per-pixel means.

    Per instant, a pixel whose centre is over 1 px from every candidate's outline (the
    distances are lower bounds) is covered the same way by all 16 samples: one evaluation.
    """
    nt = prims.shape[0]
    h, w = alpha.shape
    cand = np.empty(tile_idx.shape[2], np.int64)
    sds = np.empty(tile_idx.shape[2])
    acc = np.zeros(7)
    tot = np.zeros(7)
    n_samples = 16.0 * nt
    for i in range(h):
        for j in range(w):
            n_t = tile_n[i // tile, j // tile]
            tot[:] = 0.0
            s0 = screen[i, j, 0]
            s1 = screen[i, j, 1]
            s2 = screen[i, j, 2]
            for ti in range(nt):
                nc = 0
                for k in range(n_t):
                    pi = tile_idx[i // tile, j // tile, k]
                    b = boxes[ti, pi]
                    if b[0] <= j + 1 and b[2] >= j and b[1] <= i + 1 and b[3] >= i:
                        cand[nc] = pi
                        nc += 1
                if nc == 0:
                    continue
                simple = True
                for ci in range(nc):
                    _, sd, _ = _inside(prims[ti, cand[ci]], j + 0.5, i + 0.5)
                    sds[ci] = sd
                    if abs(sd) <= 1.0:
                        simple = False
                if simple:
                    acc[:] = 0.0
                    for ci in range(nc):
                        if sds[ci] < 0.0:
                            p = prims[ti, cand[ci]]
                            _, sd, u = _inside(p, j + 0.5, i + 0.5)
                            _shade(p, sd, u, spill_w, s0, s1, s2, acc)
                    for c in range(7):
                        tot[c] += 16.0 * acc[c]
                    continue
                for si in range(4):
                    for sj in range(4):
                        # offsets staggered per instant, so blurred edges stay smooth
                        x = j + (sj + 0.5 + 0.37 * ti) % 4.0 * 0.25
                        y = i + (si + 0.5 + 0.61 * ti) % 4.0 * 0.25
                        acc[:] = 0.0
                        for ci in range(nc):
                            p = prims[ti, cand[ci]]
                            ins, sd, u = _inside(p, x, y)
                            if ins:
                                _shade(p, sd, u, spill_w, s0, s1, s2, acc)
                        for c in range(7):
                            tot[c] += acc[c]
            alpha[i, j] = tot[0] / n_samples
            for c in range(3):
                fg_pre[i, j, c] = tot[1 + c] / n_samples
                fg_clean[i, j, c] = tot[4 + c] / n_samples


def _screen(spec: ClipSpec) -> np.ndarray:
    """The lit screen: peak at ``light_centre``, ``falloff`` darker at the far corner, a tilt
    and a soft cloth ripple."""
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lx, ly = spec.light_centre[0] * w, spec.light_centre[1] * h
    r2 = ((xx - lx) ** 2 + (yy - ly) ** 2) / (max(lx, w - lx) ** 2 + max(ly, h - ly) ** 2)
    light = 1.0 - spec.falloff * r2 + spec.tilt * (xx / w - 0.5)
    light += 0.012 * np.sin(xx / w * 9.0 + 1.3) * np.sin(yy / h * 5.0 + 0.4)
    out: np.ndarray = np.asarray(spec.screen, np.float32) * light[..., None]
    return out


def render_clip(spec: ClipSpec, start: int = 0) -> Clip:
    """Render ``spec.frames`` frames of ``spec`` from frame ``start`` on, with their true
    alpha and foreground. The scene moves continuously, so a negative ``start`` renders what
    came before the clip: the frames a codec sees first in a running stream."""
    scene = _Scene(spec)
    h, w = spec.height, spec.width
    screen = _screen(spec)
    nt = 8 if spec.fast else 4
    tile = 16
    s = h / 360.0
    noise_rng = np.random.default_rng(
        spec.seed + 1 if start == 0 else [spec.seed + 1, start % 2**32]
    )
    frames, alphas, fgs = [], [], []
    for n in range(start, start + spec.frames):
        times = [(n + spec.shutter * ((k + 0.5) / nt - 0.5)) / spec.fps for k in range(nt)]
        prims = np.stack([scene.prims(t) for t in times])
        boxes = np.stack([_bbox(p) for p in prims])
        lo = boxes.min(axis=0)
        hi = boxes.max(axis=0)
        ty, tx = -(-h // tile), -(-w // tile)
        tiles = np.zeros((ty, tx, prims.shape[1]), np.bool_)
        for pi in range(prims.shape[1]):
            x0 = max(int(lo[pi, 0] // tile), 0)
            y0 = max(int(lo[pi, 1] // tile), 0)
            x1 = min(int(hi[pi, 2] // tile), tx - 1)
            y1 = min(int(hi[pi, 3] // tile), ty - 1)
            if x0 <= x1 and y0 <= y1:
                tiles[y0 : y1 + 1, x0 : x1 + 1, pi] = True
        alpha = np.empty((h, w), np.float64)
        fg_pre = np.empty((h, w, 3), np.float64)
        fg_clean = np.empty((h, w, 3), np.float64)
        counts = tiles.sum(-1)
        order = np.argsort(~tiles, axis=-1, kind="stable")[..., : max(int(counts.max()), 1)]
        _render(prims, boxes, np.ascontiguousarray(order), counts, tile, screen, 3.0 * s,
                alpha, fg_pre, fg_clean)  # fmt: skip
        img = fg_pre + (1.0 - alpha[..., None]) * screen
        img += noise_rng.normal(0.0, spec.noise, img.shape)
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
        alphas.append(alpha.astype(np.float32))
        a = np.maximum(alpha, 1e-6)[..., None]
        fgs.append(np.where(alpha[..., None] > 0, fg_clean / a, 0.0).astype(np.float32))
    return Clip(spec, frames, alphas, fgs, screen)


def render_family(n: int = 24, seed: int = 0, **kw: int) -> list[Clip]:
    """``render_clip`` over ``family_specs(n, seed, **kw)``."""
    return [render_clip(s) for s in family_specs(n, seed, **kw)]


def mix_chart(
    screen: tuple[int, int, int],
    colours: list[tuple[int, int, int]],
    width: int = 320,
    height: int = 240,
    noise: float = 1.0,
    seed: int = 0,
    ramps: tuple[int, ...] = (4, 8, 16, 32),
) -> tuple[np.ndarray, np.ndarray]:
    """A screen with one horizontal band per colour; along each band, bars of the solid
    colour (24 px) whose sides ramp linearly from the screen over ``ramps`` pixels, the
    widths of motion-blurred edges. Returns (RGB uint8, true alpha).

    Every ramp pixel is exactly ``a F + (1 - a) S``: a matte grounded in the compositing
    equation returns ``a`` there.
    """
    need = 9 + 7 * len(colours) + sum(2 * r + 24 + 12 for r in ramps)
    if width < need or height < 16 * (len(colours) + 1):
        raise ValueError(
            f"{width}x{height} is too small for {len(colours)} bands of ramps {ramps} "
            f"(needs {need} px wide)"
        )
    alpha = np.zeros((height, width), np.float32)
    fg = np.zeros((height, width, 3), np.float32)
    band = height // (len(colours) + 1)
    for k, col in enumerate(colours):
        # each band starts 7 px further right, so the bands' edges do not all fall on one
        # column grid (which a block codec's test would read as its blocks)
        profile = np.zeros(width, np.float32)
        x = 9 + 7 * k
        for r in ramps:
            up = (np.arange(r, dtype=np.float32) + 0.5) / r
            profile[x : x + r] = up
            profile[x + r : x + r + 24] = 1.0
            profile[x + r + 24 : x + 2 * r + 24] = up[::-1]
            x += 2 * r + 24 + 12
        y0 = band // 2 + k * band + band // 4
        y1 = y0 + band // 2
        alpha[y0:y1] = profile
        fg[y0:y1] = col
    s = np.asarray(screen, np.float32)
    img = alpha[..., None] * fg + (1.0 - alpha[..., None]) * s
    img += np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), alpha
