"""``SegmentationKeyer``: person segmentation for avatars on an ordinary background.

The MediaPipe selfie-segmentation model (landscape, 144x256 input) runs on a small copy
of the frame through the LiteRT interpreter. Its coarse mask is carried to full
resolution by a guided filter on luma (He et al., computed at model resolution, applied
per pixel as ``alpha = a * Y + b``), so the edge follows the picture, not the 5x
upscaled grid. A motion-gated temporal filter steadies the mask between frames.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from greenroom.keying import _kernels as K
from greenroom.keying.base import (
    NO_ALPHA,
    RgbKeyerMethods,
    check_pair_i420,
    use_threads,
)
from greenroom.keying.frame import I420Frame
from greenroom.keying.selfie_model import require_model

MODEL_H, MODEL_W = 144, 256
_LUMA = np.array([0.256788, 0.504129, 0.097906])


def _tables(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre-aligned bilinear source indices and weights for resizing n_in -> n_out."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int32)
    i1 = np.minimum(i0 + 1, n_in - 1).astype(np.int32)
    return i0, i1, (src - i0).astype(np.float32)


class SegmentationKeyer(RgbKeyerMethods):
    """Keys a person without a green screen (same interface as ``ChromaKeyer``).

    Args:
        model_path: the ``.tflite`` file; default: the one ``greenroom setup`` installed.
        threads: interpreter threads and compositing threads.
        radius: guided-filter window radius at model resolution.
        eps: guided-filter regularisation (luma levels squared); larger is softer.
        temporal: 0..0.95, pull of the previous mask where it barely changed.
        low, high: model probabilities mapped to alpha 0 and 1 (the model is cautious on
            clothing, so ``high`` sits well below 1).

    Raises:
        SetupError: the model is not installed ("run make setup").
    """

    key_color: tuple[int, int, int] | None = None

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        threads: int = 1,
        radius: int = 2,
        eps: float = 20.0,
        temporal: float = 0.5,
        low: float = 0.1,
        high: float = 0.4,
    ):
        from ai_edge_litert.interpreter import Interpreter

        if model_path is None:
            from greenroom.config import get_settings

            model_path = require_model(get_settings().cache_dir)
        if not 0.0 <= temporal <= 0.95:
            raise ValueError(f"temporal must be 0..0.95, got {temporal}")
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"need 0 <= low < high <= 1, got {low}, {high}")
        self._interp = Interpreter(model_path=str(model_path), num_threads=threads)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self.threads = threads
        self.radius = radius
        self.eps = eps
        self.temporal = temporal
        self.low, self.high = low, high
        self._lock = threading.Lock()
        self._inp = np.zeros((MODEL_H, MODEL_W, 3), np.float32)
        self._lum = np.zeros((MODEL_H, MODEL_W), np.float32)
        self._mask = np.zeros((MODEL_H, MODEL_W), np.float32)
        self._tmp = [np.zeros((MODEL_H, MODEL_W), np.float32) for _ in range(4)]
        self._integ = np.zeros((MODEL_H + 1, MODEL_W + 1), np.float64)
        self._ma = np.zeros((MODEL_H, MODEL_W), np.float32)
        self._mb = np.zeros((MODEL_H, MODEL_W), np.float32)
        self._scratch = np.empty((4, MODEL_W), np.float32)
        self._sst = np.empty((2, MODEL_W), np.uint8)
        self._tabs: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self.reset()

    def reset(self) -> None:
        self._prev = np.zeros((MODEL_H, MODEL_W), np.float32)
        self._have_prev = False

    def _infer(self) -> None:
        """Model on ``self._inp`` -> ``self._mask`` (clipped, temporally filtered)."""
        self._interp.set_tensor(self._in, self._inp[None])
        self._interp.invoke()
        raw = self._interp.get_tensor(self._out)[0, :, :, 0]
        m = self._mask
        f32 = np.float32
        K.seg_mask(raw, f32(self.low), f32(1.0 / (self.high - self.low)), f32(self.temporal),
                   self._prev, self._have_prev and self.temporal > 0, m)  # fmt: skip
        self._have_prev = True
        t = self._tmp
        K.guided_lowres(
            self._lum,
            m,
            self.radius,
            self.eps,
            t[0],
            t[1],
            t[2],
            t[3],
            self._integ,
            self._ma,
            self._mb,
        )

    def _tables(self, w: int, h: int) -> tuple[np.ndarray, ...]:
        t = self._tabs.get((w, h))
        if t is None:
            t = self._tabs[(w, h)] = (*_tables(h, MODEL_H), *_tables(w, MODEL_W))
        return t

    # ---------------------------------------------------------------- RGB
    def _run_rgb(self, frame: np.ndarray, bg: np.ndarray | None, want_alpha: bool):
        h, w = frame.shape[:2]
        with self._lock:
            K.rgb_to_model_input(frame, self._inp, self._lum)
            self._infer()
            out = np.empty_like(frame)
            alpha = np.empty((h, w), np.uint8) if want_alpha else NO_ALPHA
            bgx = bg if bg is not None else out
            lumw = _LUMA * 1.0
            K.seg_rgb_rows(
                0,
                h,
                frame,
                bgx,
                lumw,
                self._ma,
                self._mb,
                *self._tables(w, h),
                out,
                alpha,
                want_alpha,
            )
        return (out if bg is not None else None), (alpha if want_alpha else None)

    # ---------------------------------------------------------------- I420
    def composite_i420(
        self,
        frame: I420Frame,
        background: I420Frame,
        out: I420Frame | None = None,
        alpha_out: np.ndarray | None = None,
    ) -> I420Frame:
        """Key and composite without leaving I420 (see ``ChromaKeyer.composite_i420``)."""
        out = check_pair_i420(frame, background, out)
        if alpha_out is not None and (
            alpha_out.shape != (frame.height, frame.width) or alpha_out.dtype != np.uint8
        ):
            raise ValueError(f"alpha_out must be ({frame.height}, {frame.width}) uint8")
        w, h = frame.size
        with self._lock:
            K.i420_to_model_input(frame.y, frame.u, frame.v, self._inp, self._lum)
            self._infer()
            want = alpha_out is not None
            args = (
                frame.y, frame.u, frame.v, background.y, background.u, background.v,
                self._ma, self._mb, *self._tables(w, h),
            )  # fmt: skip
            tail = (out.y, out.u, out.v, alpha_out if want else NO_ALPHA, want)
            chunks = use_threads(self.threads) * 4
            if chunks > 4:
                scratch = np.empty((chunks, 4, MODEL_W), np.float32)
                sst = np.empty((chunks, 2, MODEL_W), np.uint8)
                K.seg_i420_par(chunks, *args, scratch, sst, *tail)
            else:
                K.seg_i420_rows(0, frame.u.shape[0], *args, self._scratch, self._sst, *tail)
        return out

    def matte_i420(self, frame: I420Frame) -> np.ndarray:
        alpha = np.empty((frame.height, frame.width), np.uint8)
        self.composite_i420(frame, frame, I420Frame.empty(frame.width, frame.height), alpha)
        return alpha
