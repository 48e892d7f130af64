"""``Scene``: one session's frame pipeline, keyer + background + crossfade.

``render_i420`` runs on the compositor's worker thread for every frame; ``set_background``
may be called from any other thread. A switch opens (and so validates) the new source
first and only then swaps it in under a short lock, so a bad background never breaks
the running picture.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from greenroom.backgrounds.sources import BackgroundSource, open_background
from greenroom.backgrounds.spec import BackgroundSpec
from greenroom.errors import InvalidInput
from greenroom.keying import _kernels as K
from greenroom.keying.base import Keyer
from greenroom.keying.frame import I420Frame, _check_rgb
from greenroom.keying.params import KEYING_MODES, ChromaParams, KeyingMode

#: Longest crossfade between two backgrounds, in seconds.
MAX_TRANSITION = 10.0


def make_keyer(mode: str, chroma: ChromaParams | None = None, **options: Any) -> Keyer:
    """A keyer for ``mode`` ("auto", "chroma" or "segment")."""
    if mode == "auto":
        from greenroom.keying.auto import AutoKeyer

        return AutoKeyer(chroma, segment_options=options)
    if mode == "chroma":
        from greenroom.keying.chroma import ChromaKeyer

        return ChromaKeyer(chroma)
    if mode == "segment":
        from greenroom.keying.segment import SegmentationKeyer

        return SegmentationKeyer(**options)
    raise InvalidInput(f"mode must be one of {', '.join(KEYING_MODES)}, got {mode!r}", field="mode")


class Scene:
    """Key the avatar and composite it over the current background, crossfading switches.

    Example:
        >>> scene = Scene(background=BackgroundSpec.parse("#0044ff"), mode="chroma")
        >>> out = scene.render_i420(frame, t=0.0)            # I420Frame in, I420Frame out
        >>> scene.set_background(BackgroundSpec.parse("blur"), transition=0.3)
    """

    def __init__(
        self,
        background: BackgroundSpec | str = "none",
        mode: KeyingMode = "chroma",
        *,
        chroma: ChromaParams | None = None,
        keyer: Keyer | None = None,
    ):
        self.mode = mode
        self.keyer: Keyer = keyer or make_keyer(mode, chroma)
        spec = BackgroundSpec.parse(background)
        self._lock = threading.Lock()
        self._cur: tuple[BackgroundSpec, BackgroundSource] = (spec, open_background(spec))
        self._prev: tuple[BackgroundSpec, BackgroundSource] | None = None
        self._fade = 0.0
        self._fade_t0: float | None = None
        self._scratch: I420Frame | None = None
        self._scratch2: I420Frame | None = None
        self.keying_ms = 0.0

    # ---------------------------------------------------------------- state
    @property
    def background(self) -> BackgroundSpec:
        return self._cur[0]

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        return getattr(self.keyer, "key_color", None)

    def keyer_state(self) -> dict[str, object]:
        """The keying mode asked for, the keyer in use, and (``auto``) why it was chosen."""
        describe = getattr(self.keyer, "describe", None)
        if describe is not None:
            state: dict[str, object] = describe()
            return state
        return {"mode": self.mode, "in_use": self.mode, "decision": None}

    @property
    def transitioning(self) -> bool:
        return self._prev is not None

    def set_background(self, spec: BackgroundSpec | str, transition: float = 0.3) -> BackgroundSpec:
        """Switch to ``spec`` with a crossfade of ``transition`` seconds (0 = cut).

        Raises:
            InvalidInput: a bad spec or file (``background``) or transition (``transition``);
                the current background stays.
        """
        if not isinstance(transition, int | float) or not 0.0 <= transition <= MAX_TRANSITION:
            raise InvalidInput(
                f"transition must be 0-{MAX_TRANSITION:g} seconds, got {transition!r}",
                field="transition",
            )
        spec = BackgroundSpec.parse(spec)
        source = open_background(spec)
        dropped: list[BackgroundSource] = []
        with self._lock:
            if self._prev is not None:
                dropped.append(self._prev[1])
            if transition > 0:
                self._prev = self._cur
            else:
                dropped.append(self._cur[1])
                self._prev = None
            self._cur = (spec, source)
            self._fade = float(transition)
            self._fade_t0 = None
        for s in dropped:
            s.close()
        return spec

    def close(self) -> None:
        with self._lock:
            sources = [self._cur[1]] + ([self._prev[1]] if self._prev else [])
            self._prev = None
        for s in sources:
            s.close()

    # ---------------------------------------------------------------- rendering
    def _state(self, t: float) -> tuple[BackgroundSource, BackgroundSource | None, float]:
        """(current, previous or None, weight of the current one) at time ``t``."""
        with self._lock:
            cur, prev = self._cur[1], self._prev
            if prev is None:
                return cur, None, 1.0
            if self._fade_t0 is None:
                self._fade_t0 = t
            p = (t - self._fade_t0) / self._fade if self._fade > 0 else 1.0
            if p >= 1.0 or p < 0.0:
                self._prev = None
                prev[1].close()
                return cur, None, 1.0
            return cur, prev[1], p

    def _scratch_frame(self, w: int, h: int, second: bool = False) -> I420Frame:
        f = self._scratch2 if second else self._scratch
        if f is None or f.size != (w, h):
            f = I420Frame.empty(w, h)
            if second:
                self._scratch2 = f
            else:
                self._scratch = f
        return f

    @staticmethod
    def _blend(a: I420Frame, b: I420Frame, weight_b: float, out: I420Frame) -> I420Frame:
        w256 = round(weight_b * 256)
        K.blend_u8(a.y, b.y, w256, out.y)
        K.blend_u8(a.u, b.u, w256, out.u)
        K.blend_u8(a.v, b.v, w256, out.v)
        return out

    def _key_over(self, frame: I420Frame, bg: I420Frame | None, out: I420Frame) -> I420Frame:
        if bg is None:  # "none": the avatar's frame as it is
            out.y[...] = frame.y
            out.u[...] = frame.u
            out.v[...] = frame.v
            return out
        return self.keyer.composite_i420(frame, bg, out)

    def render_i420(self, frame: I420Frame, t: float, out: I420Frame | None = None) -> I420Frame:
        """Key ``frame`` and composite it over the background at scene time ``t`` seconds."""
        t_start = time.perf_counter()
        w, h = frame.size
        if out is None:
            out = I420Frame.empty(w, h)
        cur, prev, p = self._state(t)
        bg = cur.frame_i420(w, h, t, frame)
        if prev is None:
            self._key_over(frame, bg, out)
        else:
            old = prev.frame_i420(w, h, t, frame)
            if bg is not None and old is not None:  # blend the backgrounds, key once
                mixed = self._blend(old, bg, p, self._scratch_frame(w, h))
                self.keyer.composite_i420(frame, mixed, out)
            else:  # one side is "none": blend the finished pictures
                if bg is not None:
                    bg = self._copy_if_shared(bg, w, h)
                a = self._key_over(frame, old, self._scratch_frame(w, h, second=True))
                self._key_over(frame, bg, out)
                self._blend(a, out, p, out)
        self.keying_ms = (time.perf_counter() - t_start) * 1000.0
        return out

    def _copy_if_shared(self, bg: I420Frame, w: int, h: int) -> I420Frame:
        # a blur source reuses one buffer; the second call above would overwrite it
        return bg.copy()

    def render_rgb(self, frame_rgb: np.ndarray, t: float) -> np.ndarray:
        """RGB in and out: the keyer's full-resolution RGB path over the same background."""
        frame_rgb = _check_rgb(frame_rgb)
        h, w = frame_rgb.shape[:2]
        cur, prev, p = self._state(t)
        avatar = I420Frame.from_rgb(frame_rgb)
        bg = cur.frame_i420(w, h, t, avatar)
        bg_rgb = bg.to_rgb() if bg is not None else None
        out = self.keyer.composite(frame_rgb, bg_rgb) if bg_rgb is not None else frame_rgb.copy()
        if prev is not None:
            old = prev.frame_i420(w, h, t, avatar)
            old_rgb = (
                self.keyer.composite(frame_rgb, old.to_rgb()) if old is not None else frame_rgb
            )
            out = (old_rgb.astype(np.float32) * (1 - p) + out.astype(np.float32) * p + 0.5).astype(
                np.uint8
            )
        return out
