"""Is this a green-screen avatar at all, and what is its screen colour?

``detect_screen(frame)`` looks at a small sample of the frame and decides between the
chroma keyer (an avatar on a green or blue screen) and the segmentation keyer (anything
else), with a confidence, so ``mode=auto`` can choose per stream. A screen is:

- one strongly saturated colour (green or blue primary well above the other two),
- covering a good part of the frame (coverage) and most of its border (avatars are framed
  inside the screen; the bottom edge may be body),
- smooth: neighbouring screen samples differ by little more than sensor noise (grass,
  foliage or a green wall with texture are not screens),
- tightly clustered in chromaticity (light falloff changes brightness, not hue).

``ScreenDetector`` smooths the decision over a stream: it looks at every frame while the
stream starts, then at every ``interval``-th, and flips only with hysteresis. Frames with no
picture (one flat colour: a blank start, a waiting frame) say nothing and are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from greenroom.keying.frame import I420Frame
from greenroom.keying.params import Mode

#: Samples across the frame's width (the sample grid keeps the frame's aspect).
GRID_W = 160
#: Frames with a picture that ``ScreenDetector`` looks at one by one when a stream starts.
STARTUP_FRAMES = 5
#: Luma spread (levels, standard deviation of the samples) below which a frame is blank.
BLANK_SPREAD = 2.0


@dataclass(frozen=True)
class ScreenDecision:
    """What to key with; ``confidence`` (0.5..1) is in ``mode``, the rest explains why."""

    mode: Mode
    confidence: float
    key_color: tuple[int, int, int] | None  # the screen colour, when mode is chroma
    coverage: float  # fraction of the frame that is screen
    border: float  # fraction of the frame's border that is screen
    texture: float  # 75th percentile luma step between neighbouring screen samples (levels)
    score: float  # 0..1: how much the frame looks like an avatar on a screen

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        if self.key_color is not None:
            d["key_color"] = "#{:02X}{:02X}{:02X}".format(*self.key_color)
        return d


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(min(max((x - lo) / (hi - lo), 0.0), 1.0))


def _samples(frame: np.ndarray | I420Frame) -> np.ndarray:
    """An (h, w, 3) float32 RGB sample grid of about GRID_W columns."""
    if isinstance(frame, I420Frame):
        step = max(2, (frame.width // GRID_W) // 2 * 2)
        y = frame.y[::step, ::step].astype(np.float32)
        u = frame.u[:: step // 2, :: step // 2].astype(np.float32)[: y.shape[0], : y.shape[1]]
        v = frame.v[:: step // 2, :: step // 2].astype(np.float32)[: y.shape[0], : y.shape[1]]
        yy = 1.164383 * (y - 16.0)
        uu, vv = u - 128.0, v - 128.0
        rgb = np.stack(
            [yy + 1.596027 * vv, yy - 0.391762 * uu - 0.812968 * vv, yy + 2.017232 * uu], -1
        )
        out: np.ndarray = np.clip(rgb, 0.0, 255.0)
        return out
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"frame must be an (H, W, 3) RGB array or an I420Frame, got {getattr(frame, 'shape', frame)!r}"
        )
    step = max(1, frame.shape[1] // GRID_W)
    return frame[::step, ::step].astype(np.float32)


def _luma(samples: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB sample grid."""
    luma: np.ndarray = samples @ np.array([0.299, 0.587, 0.114], np.float32)
    return luma


def detect_screen(frame: np.ndarray | I420Frame, threshold: float = 0.5) -> ScreenDecision:
    """Decide chroma (``score >= threshold``) or segmentation for one frame."""
    s = _samples(frame)
    return _decide(s, _luma(s), threshold)


def _decide(s: np.ndarray, luma: np.ndarray, threshold: float) -> ScreenDecision:
    h, w = s.shape[:2]
    best = None
    for p in (1, 2):  # green, blue screens
        q = [c for c in range(3) if c != p]
        excess = s[..., p] - np.maximum(s[..., q[0]], s[..., q[1]])
        cand = (excess > 30.0) & (s[..., p] > 50.0)
        if best is None or cand.sum() > best[1].sum():
            best = (p, cand, excess)
    assert best is not None
    p, cand, excess = best
    if cand.sum() < 0.05 * h * w:
        return ScreenDecision("segment", 1.0 - 0.0, None, float(cand.mean()), 0.0, 0.0, 0.0)
    # the screen: candidates close to the candidates' median chromaticity
    chroma = s / np.maximum(s.sum(-1, keepdims=True), 1.0)
    m = np.median(chroma[cand], axis=0)
    member = cand & (np.abs(chroma - m).sum(-1) < 0.08)
    coverage = float(member.mean())
    ring = np.zeros((h, w), bool)
    r = max(1, h // 20)
    ring[:r] = ring[-r:] = True
    ring[:, :r] = ring[:, -r:] = True
    border = float(member[ring].mean())
    pairs = member[:, 1:] & member[:, :-1]
    steps = np.abs(luma[:, 1:] - luma[:, :-1])[pairs]
    pairs_v = member[1:] & member[:-1]
    steps = np.concatenate([steps, np.abs(luma[1:] - luma[:-1])[pairs_v]])
    texture = float(np.percentile(steps, 75)) if steps.size else 99.0
    key = np.median(s[member], axis=0) if member.any() else np.zeros(3)
    sat = float(np.median(excess[member])) if member.any() else 0.0
    score = (
        _ramp(coverage, 0.15, 0.35)
        * _ramp(border, 0.3, 0.6)
        * (1.0 - _ramp(texture, 7.0, 15.0))
        * _ramp(sat, 40.0, 70.0)
    )
    chroma_mode = score >= threshold
    key_color = tuple(round(float(c)) for c in key) if chroma_mode else None
    return ScreenDecision(
        mode="chroma" if chroma_mode else "segment",
        confidence=round(score if chroma_mode else 1.0 - score, 3),
        key_color=key_color,  # type: ignore[arg-type]
        coverage=round(coverage, 3),
        border=round(border, 3),
        texture=round(texture, 2),
        score=round(score, 3),
    )


class ScreenDetector:
    """``detect_screen`` over a stream.

    The first :data:`STARTUP_FRAMES` frames with a picture are each looked at and their
    scores averaged, so the stream's opening decision does not rest on one frame. After
    that every ``interval``-th frame is looked at, the score is a moving average, and the
    mode only flips when it crosses ``threshold`` by ``hysteresis``. Blank frames are
    skipped; ``decision`` stays None until a frame with a picture has been seen.
    """

    def __init__(self, interval: int = 15, threshold: float = 0.5, hysteresis: float = 0.1):
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        self.interval = interval
        self.threshold = threshold
        self.hysteresis = hysteresis
        self._n = 0  # frames offered
        self._seen = 0  # frames with a picture looked at
        self._avg: float | None = None
        self.decision: ScreenDecision | None = None

    def update(self, frame: np.ndarray | I420Frame) -> ScreenDecision | None:
        """The current decision (None until a frame with a picture); looks at this frame
        while the stream starts, else only every ``interval``-th frame."""
        self._n += 1
        starting = self._seen < STARTUP_FRAMES
        if not starting and (self._n - 1) % self.interval:
            return self.decision
        samples = _samples(frame)
        luma = _luma(samples)
        if luma.std() < BLANK_SPREAD:  # one flat colour: no picture to judge
            return self.decision
        d = _decide(samples, luma, self.threshold)
        self._seen += 1
        if starting:  # the plain mean of the first frames, no hysteresis yet
            prev = None
            self._avg = (
                d.score if self._avg is None else self._avg + (d.score - self._avg) / self._seen
            )
        else:
            prev = self.decision.mode if self.decision is not None else None
            assert self._avg is not None
            self._avg = 0.7 * self._avg + 0.3 * d.score
        if prev == "chroma":
            chroma = self._avg >= self.threshold - self.hysteresis
        elif prev == "segment":
            chroma = self._avg >= self.threshold + self.hysteresis
        else:
            chroma = self._avg >= self.threshold
        key = d.key_color
        if chroma and key is None and self.decision is not None:
            key = self.decision.key_color
        conf = self._avg if chroma else 1.0 - self._avg
        self.decision = ScreenDecision(
            mode="chroma" if chroma else "segment",
            confidence=round(conf, 3),
            key_color=key if chroma else None,
            coverage=d.coverage,
            border=d.border,
            texture=d.texture,
            score=round(self._avg, 3),
        )
        return self.decision
