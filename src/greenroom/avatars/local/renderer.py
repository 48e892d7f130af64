"""A head-and-shoulders presenter on a green screen that knows its exact alpha.

It is drawn procedurally to be an honest test for a keyer: anti-aliased edges, fine hair
strands with partial coverage, unevenly lit screen with a soft shadow, green spill on the
avatar's edges, and sensor noise. Everything static (body, head, hair, every eye and mouth
shape) is drawn once with 4x4 supersampling into premultiplied float32 layers; a frame is then
one fused numba pass that places the moving layers and adds noise from a precomputed table.

The compositing model, per pixel, is exactly::

    frame = fg_premultiplied + (1 - alpha) * screen + noise

where ``screen`` (:attr:`AvatarRenderer.screen`) is the clean, unevenly lit green screen and
``foreground()`` gives ``fg_premultiplied`` and ``alpha``.

Example::

    r = AvatarRenderer(1280, 720)
    rgb, alpha = r.render(t=1.5, mouth=0.4)     # (720, 1280, 3) uint8, (720, 1280) float32
    buf, _ = r.render_i420(t=1.5, mouth=0.4, want_alpha=False)   # flat I420 for LiveKit
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from greenroom.avatars.local import _kernels as K
from greenroom.errors import InvalidInput

SCREEN_RGB = (0, 177, 64)  # #00B140, "chroma green"
SS = 4  # supersampling factor per axis for the static layers
MOUTH_OPEN_LEVELS = 12
MOUTH_SHAPES = 3  # round ("oo"), neutral, wide ("ee")
EYE_LEVELS = 5  # 0 open .. 4 closed

_SKIN = (226, 176, 144)
_SKIN_DARK = (196, 140, 112)
_HAIR = (62, 40, 28)
_HAIR_LIGHT = (112, 78, 50)
_JACKET = (44, 54, 82)
_JACKET_DARK = (34, 42, 64)
_SHIRT = (232, 232, 236)
_LIPS = (176, 86, 90)
_MOUTH_IN = (76, 22, 32)
_TEETH = (240, 238, 230)
_IRIS = (74, 110, 150)


@dataclass(frozen=True)
class _Layer:
    """A premultiplied RGBA float32 layer, padded by 2 px of transparency, and its frame origin."""

    rgba: np.ndarray  # (h, w, 4) float32, rgb premultiplied, 0..255; alpha 0..1
    y0: int  # frame row of layer row 0 at rest
    x0: int


def _check_size(width: int, height: int, fps: float) -> None:
    if not (isinstance(width, int) and 64 <= width <= 3840 and width % 2 == 0):
        raise InvalidInput("width must be an even integer from 64 to 3840", field="width")
    if not (isinstance(height, int) and 64 <= height <= 2160 and height % 2 == 0):
        raise InvalidInput("height must be an even integer from 64 to 2160", field="height")
    if not (isinstance(fps, int | float) and 1 <= fps <= 120):
        raise InvalidInput("fps must be from 1 to 120", field="fps")


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Separable box blur of radius ``r`` (edge-clamped) via cumulative sums."""
    out = a.astype(np.float32)
    for axis in (0, 1):
        p = np.concatenate(
            [
                np.repeat(out.take([0], axis), r + 1, axis),
                out,
                np.repeat(out.take([-1], axis), r, axis),
            ],
            axis=axis,
        )
        c = np.cumsum(p, axis=axis, dtype=np.float64)
        n = out.shape[axis]
        hi = c.take(np.arange(2 * r + 1, 2 * r + 1 + n), axis)
        lo = c.take(np.arange(0, n), axis)
        out = ((hi - lo) / (2 * r + 1)).astype(np.float32)
    return out


def _downsample(img: Image.Image) -> np.ndarray:
    """4x supersampled RGBA (straight, opaque shapes) -> premultiplied float32 RGBA."""
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape[0] // SS, a.shape[1] // SS
    alpha = a[..., 3:4] / 255.0
    pre = np.concatenate([a[..., :3] * alpha, alpha], axis=2)
    out: np.ndarray = pre.reshape(h, SS, w, SS, 4).mean(axis=(1, 3), dtype=np.float32)
    return out


def _pad(rgba: np.ndarray, p: int = 2) -> np.ndarray:
    return np.pad(rgba, ((p, p), (p, p), (0, 0))).astype(np.float32)


class _Canvas:
    """A Pillow RGBA canvas at SS x resolution addressed in frame pixels (floats)."""

    def __init__(self, x0: int, y0: int, w: int, h: int):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.img = Image.new("RGBA", (w * SS, h * SS), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.img)

    def _p(self, x: float, y: float) -> tuple[float, float]:
        return ((x - self.x0) * SS, (y - self.y0) * SS)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: tuple[int, ...]) -> None:
        x0, y0 = self._p(cx - rx, cy - ry)
        x1, y1 = self._p(cx + rx, cy + ry)
        self.draw.ellipse([x0, y0, x1, y1], fill=(*fill[:3], 255))

    def polygon(self, pts: list[tuple[float, float]], fill: tuple[int, ...]) -> None:
        self.draw.polygon([self._p(x, y) for x, y in pts], fill=(*fill[:3], 255))

    def line(self, pts: list[tuple[float, float]], fill: tuple[int, ...], width: float) -> None:
        self.draw.line(
            [self._p(x, y) for x, y in pts],
            fill=(*fill[:3], 255),
            width=max(1, round(width * SS)),
            joint="curve",
        )

    def crop(self, x0: int, y0: int, w: int, h: int) -> _Canvas:
        """A new canvas holding a copy of the region (for drawing feature variants)."""
        c = _Canvas(x0, y0, w, h)
        bx, by = (x0 - self.x0) * SS, (y0 - self.y0) * SS
        c.img = self.img.crop((bx, by, bx + w * SS, by + h * SS))
        c.draw = ImageDraw.Draw(c.img)
        return c


# Built layers (read-only once built), shared by renderers of the same size, noise and seed.
_BUILT: dict[tuple[int, int, float, int], dict[str, Any]] = {}
_BUILT_LOCK = threading.Lock()
_BUILT_MAX = 4


class AvatarRenderer:
    """Renders the presenter at ``width`` x ``height``; ``render(t, mouth)`` -> (frame, alpha).

    Args:
        width, height: frame size in pixels (even).
        fps: frame rate the caller intends (used by callers for timing only).
        noise: standard deviation of the sensor noise in 8-bit levels (0 disables it).
        seed: seeds hair strands, blinks and noise, so a renderer is reproducible.

    One renderer per thread: a frame pastes its eye and mouth shapes into a working layer.
    """

    _alpha_scratch: np.ndarray  # set while drawing the layers, copied per instance

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        *,
        noise: float = 2.0,
        seed: int = 7,
    ) -> None:
        _check_size(width, height, fps)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= 16:
            raise InvalidInput("noise must be a number of levels from 0 to 16", field="noise")
        key = (width, height, float(noise), seed)
        built = _BUILT.get(key)
        if built is not None:
            # Drawing the layers takes over a second; every session of this look shares them.
            self.__dict__.update(built)
            self.fps = float(fps)
            self._new_working_buffers()
            return
        self.width, self.height, self.fps = width, height, float(fps)
        self.noise_sigma = float(noise)
        self.seed = seed
        self._s = height / 720.0
        self._cx = width / 2.0
        self._rng = np.random.default_rng(seed)
        n = K.NOISE_LEN + 3 * width

        def table(sigma: float) -> np.ndarray:
            return np.clip(np.round(self._rng.normal(0.0, sigma, n)), -127, 127).astype(np.int8)

        # RGB noise, and the spread it has in Y and in 2x2-averaged U/V (BT.601)
        self._noise = table(self.noise_sigma)
        self._noise_y = table(self.noise_sigma * 0.574)
        self._noise_c = table(self.noise_sigma * 0.285)
        self._acc = np.empty(width * 4 + 8, np.float32)
        self._hv = np.empty(width * 4 + 8, np.float32)
        self._tmp = np.empty((2, width * 3), np.float32)
        self._build()
        with _BUILT_LOCK:
            if len(_BUILT) >= _BUILT_MAX:
                _BUILT.pop(next(iter(_BUILT)))
            _BUILT[key] = dict(self.__dict__)

    def _new_working_buffers(self) -> None:
        """Per-instance scratch: a frame writes eyes and mouth into ``_work`` and uses these."""
        self._work = self.head.rgba.copy()
        self._work2 = self._work.reshape(self._work.shape[0], -1)
        self._alpha_scratch = np.empty_like(self._alpha_scratch)
        self._acc = np.empty_like(self._acc)
        self._hv = np.empty_like(self._hv)
        self._tmp = np.empty_like(self._tmp)

    # ----------------------------------------------------------------- geometry
    def _g(self, x: float, y: float) -> tuple[float, float]:
        """720p design coordinates (centre x = 640) -> frame coordinates."""
        return self._cx + (x - 640.0) * self._s, y * self._s

    def _build(self) -> None:
        self._build_body()
        self._build_head()
        self._build_screen()
        self._work = self.head.rgba.copy()
        self._work2 = self._work.reshape(self._work.shape[0], -1)
        self._body2 = self.body.rgba.reshape(self.body.rgba.shape[0], -1)
        self._body_ext = _extents(self.body.rgba[..., 3])
        self._head_ext = _extents(self.head.rgba[..., 3])  # eyes and mouth never change alpha

    def _build_body(self) -> None:
        s, g = self._s, self._g
        x0, _ = g(220, 0)
        x1, _ = g(1060, 0)
        y0 = int(330 * s)
        bx0, bw, bh = int(x0), int(x1 - x0), self.height - y0 + int(12 * s)
        c = _Canvas(bx0, y0, bw, bh)
        # neck (goes up under the chin so head motion never shows a gap)
        nx0, ny0 = g(598, 330)
        nx1, ny1 = g(682, 470)
        c.polygon([(nx0, ny0), (nx1, ny0), (nx1 + 6 * s, ny1), (nx0 - 6 * s, ny1)], _SKIN_DARK)
        # shoulders sloping from the neck, rounded at the arms, torso down to the bottom edge
        left = [(585, 446), (520, 458), (440, 474), (380, 492), (342, 515), (318, 548),
                (306, 590), (298, 660), (290, 760)]  # fmt: skip
        right = [(1280 - x, y) for x, y in reversed(left)]
        c.polygon([g(x, y) for x, y in left + right], _JACKET)
        # shirt V and collar, lapels
        c.polygon([g(592, 440), g(688, 440), g(640, 590)], _SHIRT)
        c.polygon([g(592, 440), g(640, 590), g(560, 520), g(548, 452)], _JACKET_DARK)
        c.polygon([g(688, 440), g(640, 590), g(720, 520), g(732, 452)], _JACKET_DARK)
        c.ellipse(*g(640, 448), 40 * s, 14 * s, _SKIN_DARK)
        rgba = _downsample(c.img)
        rgba = self._shade(rgba, bx0, y0, light=(0.95, 0.2), spill=0.35)
        self.body = _Layer(_pad(rgba), y0 - 2, bx0 - 2)

    def _build_head(self) -> None:
        s, g = self._s, self._g
        hx0, hy0 = (int(v) for v in g(400, 40))
        hx1, hy1 = (int(v) for v in g(880, 430))
        c = _Canvas(hx0, hy0, hx1 - hx0, hy1 - hy0)
        rng = np.random.default_rng(self.seed)
        # hair behind the head, ears, face
        c.ellipse(*g(640, 225), 118 * s, 122 * s, _HAIR)
        c.ellipse(*g(544, 272), 16 * s, 28 * s, _SKIN_DARK)
        c.ellipse(*g(736, 272), 16 * s, 28 * s, _SKIN_DARK)
        c.ellipse(*g(640, 262), 96 * s, 122 * s, _SKIN)
        # fringe: a cap over the forehead, with a side parting
        c.polygon(
            [
                g(534, 240),
                g(540, 170),
                g(590, 128),
                g(660, 118),
                g(730, 150),
                g(748, 235),
                g(728, 190),
                g(690, 168),
                g(640, 176),
                g(590, 188),
                g(556, 214),
            ],
            _HAIR,
        )
        # fine strands: thin curved lines leaving the hair outline (partial coverage)
        for _ in range(170):
            ang = rng.uniform(math.radians(-200), math.radians(20))
            rx, ry = 112 * s, 116 * s
            sx, sy = g(640 + math.cos(ang) * rx / s, 222 + math.sin(ang) * ry / s)
            length = rng.uniform(14, 58) * s
            curl = rng.uniform(-0.9, 0.9)
            pts = []
            for k in range(7):
                u = k / 6
                a2 = ang + curl * u * 0.8
                pts.append((sx + math.cos(a2) * length * u, sy + math.sin(a2) * length * u))
            col = _HAIR_LIGHT if rng.random() < 0.5 else _HAIR
            c.line(pts, col, width=rng.choice([0.25, 0.25, 0.5, 0.75]) * max(s, 1.0))
        # eyebrows, nose, cheeks
        for sgn in (-1, 1):
            pts = [g(640 + sgn * 20, 219), g(640 + sgn * 38, 211), g(640 + sgn * 58, 217)]
            c.line(pts, _HAIR, width=5 * s)
        c.line([g(640, 262), g(633, 300), g(644, 304)], _SKIN_DARK, width=3 * s)
        self._head_canvas = c
        self._eye_patches, self._eye_boxes = self._build_eyes(c)
        self._mouth_patches, self._mouth_box = self._build_mouth(c)
        rgba = _downsample(c.img)
        rgba = self._shade(rgba, hx0, hy0, light=(1.0, 0.16), spill=0.35)
        self._head_shade = self._shade_map(hx0, hy0, rgba.shape[1], rgba.shape[0], (1.0, 0.16))
        self.head = _Layer(_pad(rgba), hy0 - 2, hx0 - 2)
        # feature patches are shaded like the face around them
        for patches, (py, px, ph, pw) in [
            *[(p, b) for p, b in zip(self._eye_patches, self._eye_boxes, strict=True)],
            (self._mouth_patches, self._mouth_box),
        ]:
            for i, p in enumerate(patches):
                sh = self._head_shade[py : py + ph, px : px + pw, None]
                q = p.copy()
                q[..., :3] *= sh
                patches[i] = q
        del self._head_canvas

    def _feature_box(self, cx: float, cy: float, hw: float, hh: float) -> tuple[int, int, int, int]:
        c = self._head_canvas
        x0, y0 = int(cx - hw), int(cy - hh)
        w, h = int(2 * hw) + 1, int(2 * hh) + 1
        return y0 - c.y0 + 2, x0 - c.x0 + 2, h, w  # padded layer coordinates

    def _build_eyes(
        self, c: _Canvas
    ) -> tuple[list[list[np.ndarray]], list[tuple[int, int, int, int]]]:
        s, g = self._s, self._g
        all_patches, boxes = [], []
        for sgn in (-1, 1):
            cx, cy = g(640 + sgn * 38, 256)
            box = self._feature_box(cx, cy, 26 * s, 16 * s)
            py, px, ph, pw = box
            patches = []
            for level in range(EYE_LEVELS):
                closed = level / (EYE_LEVELS - 1)
                e = c.crop(px - 2 + c.x0, py - 2 + c.y0, pw, ph)
                e.ellipse(cx, cy, 18 * s, 10 * s, _SKIN_DARK)
                if closed < 1.0:
                    e.ellipse(cx, cy, 16 * s, 8.5 * s, (245, 244, 240))
                    e.ellipse(cx, cy, 7.5 * s, 7.5 * s, _IRIS)
                    e.ellipse(cx, cy, 3.6 * s, 3.6 * s, (16, 14, 18))
                    e.ellipse(cx + 2.5 * s, cy - 2.5 * s, 1.6 * s, 1.6 * s, (255, 255, 255))
                # upper lid comes down with the blink
                lid = cy - 11 * s + closed * 19.5 * s
                e.polygon(
                    [
                        (cx - 20 * s, cy - 14 * s),
                        (cx + 20 * s, cy - 14 * s),
                        (cx + 20 * s, lid),
                        (cx - 20 * s, lid),
                    ],
                    _SKIN,
                )
                e.line(
                    [(cx - 17 * s, lid), (cx, lid + 1.5 * s), (cx + 17 * s, lid)],
                    (40, 28, 24),
                    width=1.6 * s,
                )
                patches.append(_downsample(e.img))
            all_patches.append(patches)
            boxes.append(box)
        return all_patches, boxes

    def _build_mouth(self, c: _Canvas) -> tuple[list[np.ndarray], tuple[int, int, int, int]]:
        s, g = self._s, self._g
        cx, cy = g(640, 334)
        box = self._feature_box(cx, cy, 44 * s, 27 * s)
        py, px, ph, pw = box
        patches = []
        for shape in range(MOUTH_SHAPES):
            wide = shape / (MOUTH_SHAPES - 1)  # 0 round .. 1 wide
            for lvl in range(MOUTH_OPEN_LEVELS):
                o = lvl / (MOUTH_OPEN_LEVELS - 1)
                m = c.crop(px - 2 + c.x0, py - 2 + c.y0, pw, ph)
                rx = (24 + 12 * wide - 6 * o * (1 - wide)) * s
                ry = (3.0 + 17 * o * (0.75 + 0.25 * (1 - wide))) * s
                m.ellipse(cx, cy + 2 * s, rx + 4 * s, ry + 4 * s, _LIPS)
                if o > 0.05:
                    m.ellipse(cx, cy + 2 * s, rx, ry, _MOUTH_IN)
                    if o > 0.25:
                        m.ellipse(cx, cy + 2 * s - ry * 0.95, rx * 0.7, ry * 0.35, _TEETH)
                    m.ellipse(cx, cy + 2 * s + ry * 0.55, rx * 0.5, ry * 0.3, (150, 60, 70))
                else:
                    m.line(
                        [(cx - rx, cy + 1 * s), (cx, cy + 3 * s), (cx + rx, cy + 1 * s)],
                        (120, 50, 56),
                        width=1.6 * s,
                    )
                patches.append(_downsample(m.img))
        return patches, box

    def _shade_map(
        self, x0: int, y0: int, w: int, h: int, light: tuple[float, float]
    ) -> np.ndarray:
        """Soft light from the upper left, as a multiplier (frame-anchored, padded coords)."""
        base, k = light
        ys = (np.arange(-2, h + 2, dtype=np.float32) + y0 - 0.3 * self.height) / self.height
        xs = (np.arange(-2, w + 2, dtype=np.float32) + x0 - self._cx) / self.height
        return (base - k * (0.8 * xs[None, :] + 0.6 * ys[:, None])).astype(np.float32)

    def _shade(
        self, rgba: np.ndarray, x0: int, y0: int, *, light: tuple[float, float], spill: float
    ) -> np.ndarray:
        """Apply lighting and green spill near the silhouette; alpha is left exactly as drawn."""
        h, w = rgba.shape[:2]
        a = rgba[..., 3]
        shade = self._shade_map(x0, y0, w, h, light)[2:-2, 2:-2]
        straight = np.where(a[..., None] > 1e-6, rgba[..., :3] / np.maximum(a, 1e-6)[..., None], 0)
        straight *= shade[..., None]
        # spill: strongest where the surroundings are screen
        near = np.clip((1.0 - _box_blur(a, max(2, round(6 * self._s)))) * 2.0, 0.0, 1.0)
        k = (spill * near)[..., None]
        straight = (
            straight * (1 - k) + np.array(SCREEN_RGB, np.float32) * k * 0.9 + straight * k * 0.1
        )
        out = rgba.copy()
        out[..., :3] = np.clip(straight, 0, 255) * a[..., None]
        return out

    def _build_screen(self) -> None:
        H, W = self.height, self.width
        ys = (np.arange(H, dtype=np.float32) / H)[:, None]
        xs = (np.arange(W, dtype=np.float32) / W)[None, :]
        # a hot spot upper left, fall-off to the corners, gentle cloth folds
        light = (
            0.98
            + 0.22 * np.exp(-((xs - 0.30) ** 2 + (ys - 0.22) ** 2) / 0.12)
            - 0.10 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2)
            + 0.025 * np.sin(xs * 23.0 + ys * 9.0)
        )
        # the presenter's soft shadow, down and to the right of the silhouette
        sh = np.zeros((H, W), np.float32)
        for layer, dx in ((self.body, 40), (self.head, 40)):
            a = layer.rgba[..., 3]
            y0, x0 = layer.y0 + int(18 * self._s), layer.x0 + int(dx * self._s)
            ys0, xs0 = max(0, y0), max(0, x0)
            ys1, xs1 = min(H, y0 + a.shape[0]), min(W, x0 + a.shape[1])
            if ys1 > ys0 and xs1 > xs0:
                part = a[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0]
                sh[ys0:ys1, xs0:xs1] = np.maximum(sh[ys0:ys1, xs0:xs1], part)
        sh = _box_blur(_box_blur(sh, max(2, round(14 * self._s))), max(2, round(14 * self._s)))
        light = light * (1.0 - 0.22 * sh)
        rgb = np.array(SCREEN_RGB, np.float32)[None, None, :] * light[..., None]
        rgb += np.array([6, 0, 8], np.float32) * (1 - light[..., None])  # a little grey in the dark
        self.screen = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        self._screen_i420 = np.empty(W * H * 3 // 2, np.uint8)
        K.rgb_to_i420(self.screen, self._screen_i420)
        self._alpha_scratch = np.empty((H, W), np.float32)
        self._screen_rows = self.screen.reshape(H, W * 3)
        self.screen.setflags(write=False)

    def mouth_region(self, margin: int = 8) -> tuple[int, int, int, int]:
        """Frame rows/cols ``(y0, y1, x0, x1)`` that hold the mouth whatever the idle motion."""
        py, px, ph, pw = self._mouth_box
        m = margin + round(6 * self._s)
        y0, x0 = self.head.y0 + py - m, self.head.x0 + px - m
        return (
            max(0, y0),
            min(self.height, y0 + ph + 2 * m),
            max(0, x0),
            min(self.width, x0 + pw + 2 * m),
        )

    # ----------------------------------------------------------------- per frame
    def pose(self, t: float) -> tuple[float, float, float, float, int]:
        """(body_dy, body_dx, head_dy, head_dx, eye_level) at time ``t`` (seconds)."""
        s = self._s
        tau = 2 * math.pi
        bdy = 1.6 * s * math.sin(tau * 0.23 * t)
        bdx = 0.8 * s * math.sin(tau * 0.09 * t + 0.4)
        hdy = bdy + 1.8 * s * math.sin(tau * 0.19 * t + 0.5)
        hdx = bdx + 3.0 * s * math.sin(tau * 0.13 * t) + 1.2 * s * math.sin(tau * 0.37 * t + 1.0)
        return bdy, bdx, hdy, hdx, self._eye_level(t)

    def _eye_level(self, t: float) -> int:
        """Blinks every 2.5-5.5 s, each 0.2 s, at reproducible times."""
        period = 4.0
        k = math.floor(t / period)
        for kk in (k - 1, k):
            h = math.sin((kk + self.seed * 0.618) * 12.9898) * 43758.5453
            start = kk * period + (h - math.floor(h)) * 3.0
            u = (t - start) / 0.2
            if 0.0 <= u < 1.0:
                closed = 1.0 - abs(2.0 * u - 1.0)
                return min(EYE_LEVELS - 1, round(closed * (EYE_LEVELS - 1) * 1.2))
        return 0

    def _mouth_index(self, mouth: float, shape: float) -> int:
        m = min(max(float(mouth), 0.0), 1.0)
        sh = min(max(float(shape), 0.0), 1.0)
        return round(sh * (MOUTH_SHAPES - 1)) * MOUTH_OPEN_LEVELS + round(
            m * (MOUTH_OPEN_LEVELS - 1)
        )

    def _prepare(
        self, t: float, mouth: float, shape: float
    ) -> tuple[int, int, np.ndarray, int, int, np.ndarray]:
        bdy, bdx, hdy, hdx, eye = self.pose(t)
        # numpy copies (the GIL stays held: no extra GIL hand-over per frame for a few KiB)
        for patches, (py, px, ph, pw) in zip(self._eye_patches, self._eye_boxes, strict=True):
            self._work[py : py + ph, px : px + pw] = patches[eye]
        py, px, ph, pw = self._mouth_box
        self._work[py : py + ph, px : px + pw] = self._mouth_patches[
            self._mouth_index(mouth, shape)
        ]
        by, bx, bw = _place(self.body.y0 + bdy, self.body.x0 + bdx)
        hy, hx, hw = _place(self.head.y0 + hdy, self.head.x0 + hdx)
        return by, bx, bw, hy, hx, hw

    def _noise_args(self, t: float, noise: bool) -> tuple[int, float]:
        frame_no = round(t * self.fps)
        off = (frame_no * 2654435761 + self.seed) % K.NOISE_LEN
        return off, (1 if noise and self.noise_sigma > 0 else 0)

    def render(
        self,
        t: float,
        mouth: float = 0.0,
        shape: float = 0.5,
        *,
        noise: bool = True,
        out: np.ndarray | None = None,
        alpha_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One RGB frame and its exact alpha.

        Args:
            t: time in seconds (drives idle motion, blinks and the noise pattern).
            mouth: mouth opening, 0 closed .. 1 wide open.
            shape: mouth shape, 0 round .. 1 wide.
            noise: add sensor noise (off gives the exact composite).
            out, alpha_out: optional preallocated (H, W, 3) uint8 / (H, W) float32 arrays.

        Returns:
            ``(frame, alpha)``: (H, W, 3) uint8 RGB and (H, W) float32 in [0, 1], 1 = avatar.
        """
        H, W = self.height, self.width
        out = np.empty((H, W, 3), np.uint8) if out is None else out
        alpha_out = np.empty((H, W), np.float32) if alpha_out is None else alpha_out
        by, bx, bw, hy, hx, hw = self._prepare(t, mouth, shape)
        off, amp = self._noise_args(t, noise)
        K.render_rgb(
            self._screen_rows, self._body2, by, bx, bw, self._body_ext, self._work2, hy, hx, hw,
            self._head_ext, self._noise, off, amp, out.reshape(H, W * 3), alpha_out, self._acc,
            self._hv, self._tmp[0],
        )  # fmt: skip
        return out, alpha_out

    def render_i420(
        self,
        t: float,
        mouth: float = 0.0,
        shape: float = 0.5,
        *,
        noise: bool = True,
        want_alpha: bool = True,
        out: np.ndarray | None = None,
        alpha_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :meth:`render`, as a flat I420 buffer (W*H*3/2 uint8, BT.601 limited range).

        The buffer is what ``rtc.VideoFrame(W, H, VideoBufferType.I420, buf)`` takes.
        """
        H, W = self.height, self.width
        out = np.empty(W * H * 3 // 2, np.uint8) if out is None else out
        if alpha_out is None:
            alpha_out = np.empty((H, W), np.float32) if want_alpha else self._alpha_scratch
        by, bx, bw, hy, hx, hw = self._prepare(t, mouth, shape)
        off, amp = self._noise_args(t, noise)
        K.render_i420(
            self._screen_rows, self._screen_i420, self._body2, by, bx, bw, self._body_ext,
            self._work2, hy, hx, hw, self._head_ext, self._noise, self._noise_y, self._noise_c,
            off, amp, out, alpha_out, want_alpha, self._acc, self._hv, self._tmp,
        )  # fmt: skip
        return out, (alpha_out if want_alpha else None)

    def foreground(
        self, t: float, mouth: float = 0.0, shape: float = 0.5
    ) -> tuple[np.ndarray, np.ndarray]:
        """The avatar alone: premultiplied RGB (H, W, 3) float32 0..255 and alpha (H, W) float32.

        ``fg + (1 - alpha) * background`` puts the presenter on any background, exactly as
        :meth:`render` puts it on :attr:`screen` (before rounding and noise).
        """
        H, W = self.height, self.width
        by, bx, bw, hy, hx, hw = self._prepare(t, mouth, shape)
        fg = np.empty((H, W, 3), np.float32)
        alpha = np.empty((H, W), np.float32)
        K.render_fg(
            self._body2, by, bx, bw, self._body_ext, self._work2, hy, hx, hw, self._head_ext,
            fg, alpha, self._acc, self._hv,
        )  # fmt: skip
        return fg, alpha

    def render_naive(self, t: float, mouth: float = 0.0, shape: float = 0.5) -> np.ndarray:
        """Anchor for the benchmark: redraw every layer supersampled and composite with numpy.

        Produces the same picture as :meth:`render` (up to noise), the slow way.
        """
        self._build_body()
        self._build_head()
        self._build_screen()
        self._work = self.head.rgba.copy()
        self._work2 = self._work.reshape(self._work.shape[0], -1)
        self._body2 = self.body.rgba.reshape(self.body.rgba.shape[0], -1)
        self._body_ext = _extents(self.body.rgba[..., 3])
        self._head_ext = _extents(self.head.rgba[..., 3])
        H, W = self.height, self.width
        bdy, bdx, hdy, hdx, eye = self.pose(t)
        acc: np.ndarray = np.zeros((H, W, 4), np.float32)
        for layer, dy, dx in ((self.body, bdy, bdx), (self.head, hdy, hdx)):
            rgba = layer.rgba.copy()
            if layer is self.head:
                for patches, (py, px, ph, pw) in zip(
                    self._eye_patches, self._eye_boxes, strict=True
                ):
                    rgba[py : py + ph, px : px + pw] = patches[eye]
                py, px, ph, pw = self._mouth_box
                rgba[py : py + ph, px : px + pw] = self._mouth_patches[
                    self._mouth_index(mouth, shape)
                ]
            placed = _shift_numpy(rgba, layer.y0 + dy, layer.x0 + dx, H, W)
            acc = placed + (1.0 - placed[..., 3:4]) * acc
        frame = acc[..., :3] + (1.0 - acc[..., 3:4]) * self.screen
        frame += np.random.default_rng(round(t * self.fps)).normal(0, self.noise_sigma, frame.shape)
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _extents(alpha: np.ndarray) -> np.ndarray:
    """Per layer row r (0 .. h-2), the columns [c0, c1) whose bilinear footprint (rows r and
    r + 1, columns c and c + 1) has any coverage; (0, 0) for an empty row."""
    m = (alpha[:-1] > 0) | (alpha[1:] > 0)
    m = m[:, :-1] | m[:, 1:]
    any_ = m.any(axis=1)
    c0 = np.where(any_, m.argmax(axis=1), 0)
    c1 = np.where(any_, m.shape[1] - m[:, ::-1].argmax(axis=1), 0)
    return np.stack([c0, c1], axis=1).astype(np.int64)


def _place(y: float, x: float) -> tuple[int, int, np.ndarray]:
    """Integer origin + bilinear weights for a layer whose row/col 0 sits at frame (y, x)."""
    iy, ix = math.floor(y), math.floor(x)
    ty, tx = 1.0 - (y - iy), 1.0 - (x - ix)
    w = np.array([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], dtype=np.float32)
    return iy + 1, ix + 1, w


def _shift_numpy(rgba: np.ndarray, y: float, x: float, H: int, W: int) -> np.ndarray:
    """Place ``rgba`` at fractional (y, x) in an (H, W, 4) canvas by bilinear interpolation."""
    by, bx, w = _place(y, x)
    h, wd = rgba.shape[:2]
    p = np.zeros((H + 1, W + 1, 4), np.float32)  # p[j, i] = rgba[j - by, i - bx]
    r0, r1 = max(0, -by), min(h, H + 1 - by)
    c0, c1 = max(0, -bx), min(wd, W + 1 - bx)
    if r1 > r0 and c1 > c0:
        p[r0 + by : r1 + by, c0 + bx : c1 + bx] = rgba[r0:r1, c0:c1]
    out: np.ndarray = w[0] * p[:-1, :-1] + w[1] * p[:-1, 1:] + w[2] * p[1:, :-1] + w[3] * p[1:, 1:]
    return out
