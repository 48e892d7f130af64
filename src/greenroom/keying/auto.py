"""``AutoKeyer``: the chroma keyer for an avatar on a screen, segmentation for any other.

The choice is made per stream by :class:`~greenroom.keying.detect.ScreenDetector`, which
looks at every frame while the stream starts and at every ``interval``-th frame after that,
with hysteresis, so one odd frame (a cut, a hand over the screen) does not switch keyers.
Until the first frame with a picture arrives the chroma keyer is used: it is the cheap one,
and a blank frame keys to nothing either way.

The segmentation keyer (a TFLite model) is only loaded once a stream needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from greenroom.keying.base import check_pair_rgb
from greenroom.keying.chroma import ChromaKeyer
from greenroom.keying.detect import ScreenDecision, ScreenDetector
from greenroom.keying.frame import I420Frame, _check_rgb
from greenroom.keying.params import ChromaParams, Mode

if TYPE_CHECKING:
    from greenroom.keying.segment import SegmentationKeyer


class AutoKeyer:
    """Picks chroma or segmentation per stream and keys with it (the ``Keyer`` interface).

    Args:
        chroma: the chroma keyer's settings, used whenever the stream is keyed by colour.
        interval: once the stream has started, look at every ``interval``-th frame.
        segment_options: passed to ``SegmentationKeyer`` when it is first needed.

    Example:
        >>> keyer = AutoKeyer()
        >>> out = keyer.composite_i420(frame, background)
        >>> keyer.mode, keyer.decision.confidence
        ('chroma', 0.97)
    """

    def __init__(
        self,
        chroma: ChromaParams | None = None,
        *,
        interval: int = 15,
        segment_options: dict[str, Any] | None = None,
    ):
        self.chroma = ChromaKeyer(chroma)
        self._segment: SegmentationKeyer | None = None
        self._segment_options = dict(segment_options or {})
        self.detector = ScreenDetector(interval=interval)

    # ------------------------------------------------------------------ state
    @property
    def decision(self) -> ScreenDecision | None:
        """The detector's latest decision, with its reasons; None before a picture."""
        return self.detector.decision

    @property
    def mode(self) -> Mode:
        """The keyer in use now."""
        d = self.detector.decision
        return "chroma" if d is None else d.mode

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        return self.chroma.key_color if self.mode == "chroma" else None

    def describe(self) -> dict[str, object]:
        """What the session metrics show: the keyer in use and why."""
        d = self.detector.decision
        return {
            "mode": "auto",
            "in_use": self.mode,
            "decision": None if d is None else d.as_dict(),
        }

    def reset(self) -> None:
        """A new stream: forget both keyers' state and decide again."""
        self.chroma.reset()
        if self._segment is not None:
            self._segment.reset()
        self.detector = ScreenDetector(interval=self.detector.interval)

    # ---------------------------------------------------------------- keying
    def _keyer(self, frame: np.ndarray | I420Frame) -> ChromaKeyer | SegmentationKeyer:
        decision = self.detector.update(frame)
        if decision is None or decision.mode == "chroma":  # no picture yet: the cheap one
            return self.chroma
        if self._segment is None:
            from greenroom.keying.segment import SegmentationKeyer

            self._segment = SegmentationKeyer(**self._segment_options)
        return self._segment

    def composite_i420(
        self,
        frame: I420Frame,
        background: I420Frame,
        out: I420Frame | None = None,
        alpha_out: np.ndarray | None = None,
    ) -> I420Frame:
        """Key ``frame`` over ``background`` with the keyer this stream needs."""
        return self._keyer(frame).composite_i420(frame, background, out, alpha_out)

    def matte_i420(self, frame: I420Frame) -> np.ndarray:
        return self._keyer(frame).matte_i420(frame)

    def matte(self, frame_rgb: np.ndarray) -> np.ndarray:
        return self._keyer(_check_rgb(frame_rgb)).matte(frame_rgb)

    def composite(self, frame_rgb: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
        check_pair_rgb(frame_rgb, background_rgb)
        return self._keyer(frame_rgb).composite(frame_rgb, background_rgb)

    def composite_with_alpha(
        self, frame_rgb: np.ndarray, background_rgb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        check_pair_rgb(frame_rgb, background_rgb)
        return self._keyer(frame_rgb).composite_with_alpha(frame_rgb, background_rgb)
