"""The ``Keyer`` interface shared by the chroma and segmentation keyers, plus checks."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numba
import numpy as np

from greenroom.keying.frame import I420Frame, _check_rgb


@runtime_checkable
class Keyer(Protocol):
    """Finds the avatar in a frame and puts it on a background."""

    key_color: tuple[int, int, int] | None

    def matte(self, frame_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 alpha, 255 = avatar."""
        ...

    def composite(self, frame_rgb: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
        """Avatar from ``frame_rgb`` over ``background_rgb`` (same size) -> (H, W, 3) uint8."""
        ...

    def composite_i420(
        self,
        frame: I420Frame,
        background: I420Frame,
        out: I420Frame | None = None,
        alpha_out: np.ndarray | None = None,
    ) -> I420Frame:
        """The same on I420 frames, without converting to RGB; ``alpha_out`` ((H, W) uint8)
        receives the matte from the same pass."""
        ...

    def reset(self) -> None:
        """Forget temporal state (a new stream, a cut)."""
        ...


def check_pair_rgb(frame: np.ndarray, background: np.ndarray) -> None:
    _check_rgb(frame, "frame")
    _check_rgb(background, "background")
    if frame.shape != background.shape:
        raise ValueError(
            f"background is {background.shape[1]}x{background.shape[0]} but the frame is "
            f"{frame.shape[1]}x{frame.shape[0]}; they must be the same size"
        )


def check_pair_i420(
    frame: I420Frame,
    background: I420Frame,
    out: I420Frame | None,
    alpha_out: np.ndarray | None = None,
) -> I420Frame:
    """Checks a keyer's I420 arguments; returns ``out``, or a new frame when it is None."""
    if not isinstance(frame, I420Frame) or not isinstance(background, I420Frame):
        raise ValueError("frame and background must be I420Frame")
    if frame.size != background.size:
        raise ValueError(
            f"background is {background.width}x{background.height} but the frame is "
            f"{frame.width}x{frame.height}; they must be the same size"
        )
    if alpha_out is not None and (
        alpha_out.shape != (frame.height, frame.width) or alpha_out.dtype != np.uint8
    ):
        raise ValueError(f"alpha_out must be ({frame.height}, {frame.width}) uint8")
    if out is None:
        return I420Frame.empty(frame.width, frame.height)
    if out.size != frame.size:
        raise ValueError(
            f"out is {out.width}x{out.height}, the frame is {frame.width}x{frame.height}"
        )
    return out


def use_threads(threads: int) -> int:
    """Set numba's thread count for this calling thread; returns the count in effect."""
    # numba.config sets its attributes from the environment at import; no stub names them
    ceiling: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    n = max(1, min(threads, ceiling))
    if n > 1:
        numba.set_num_threads(n)
    return n


#: A 1x1 stand-in for an optional output a kernel should not write.
NO_ALPHA = np.zeros((1, 1), np.uint8)


class RgbKeyerMethods:
    """The RGB half of the :class:`Keyer` interface, over a keyer's one fused ``_run_rgb`` pass.

    A keyer provides ``_run_rgb(frame, background | None, want_alpha) -> (out, alpha)``.
    """

    def _run_rgb(
        self, frame_rgb: np.ndarray, background_rgb: np.ndarray | None, want_alpha: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError

    def matte(self, frame_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 alpha, 255 = avatar."""
        _check_rgb(frame_rgb)
        return self._run_rgb(frame_rgb, None, True)[1]  # type: ignore[return-value]

    def composite(self, frame_rgb: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
        """The avatar from ``frame_rgb`` over ``background_rgb`` (same size) -> (H, W, 3) uint8."""
        check_pair_rgb(frame_rgb, background_rgb)
        return self._run_rgb(frame_rgb, background_rgb, False)[0]  # type: ignore[return-value]

    def composite_with_alpha(
        self, frame_rgb: np.ndarray, background_rgb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``composite`` and ``matte`` from one pass."""
        check_pair_rgb(frame_rgb, background_rgb)
        return self._run_rgb(frame_rgb, background_rgb, True)  # type: ignore[return-value]
