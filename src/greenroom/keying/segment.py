"""``SegmentationKeyer``: person segmentation for avatars on an ordinary background.

The MediaPipe selfie-segmentation model (landscape, 144x256 input) runs on a small copy
of the frame through the LiteRT interpreter. Its coarse mask is carried to full
resolution by a guided filter on luma (He et al., computed at model resolution, applied
per pixel as ``alpha = a * Y + b``), so the edge follows the picture, not the 5x
upscaled grid. A motion-gated temporal filter steadies the mask between frames.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from greenroom.keying import _kernels as K
from greenroom.keying.base import (
    NO_ALPHA,
    RgbKeyerMethods,
    check_pair_i420,
    use_threads,
)
from greenroom.keying.frame import I420Frame
from greenroom.keying.params import SegmentParams
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
        params: the settings (``SegmentParams``); ``overrides`` replace single fields.
        model_path: the ``.tflite`` file; default: the one ``greenroom setup`` installed.

    Raises:
        InvalidInput: a setting is out of range (the error names it).
        SetupError: the model is not installed ("run make setup").
    """

    key_color: tuple[int, int, int] | None = None

    def __init__(
        self,
        params: SegmentParams | None = None,
        *,
        model_path: Path | str | None = None,
        **overrides: Any,
    ):
        from ai_edge_litert.interpreter import Interpreter

        params = params or SegmentParams()
        self.params = replace(params, **overrides) if overrides else params
        if model_path is None:
            from greenroom.config import get_settings

            model_path = require_model(get_settings().cache_dir)
        self._interp = Interpreter(model_path=str(model_path), num_threads=self.params.threads)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
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
        self._tabs: dict[tuple[int, int], K.Tables] = {}
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
        p = self.params
        f32 = np.float32
        K.seg_mask(raw, f32(p.low), f32(1.0 / (p.high - p.low)), f32(p.temporal),
                   self._prev, self._have_prev and p.temporal > 0, m)  # fmt: skip
        self._have_prev = True
        t = self._tmp
        # numba's stub cannot count a dispatcher call's arguments through ``*t``
        K.guided_lowres(  # type: ignore[call-arg]
            self._lum, m, p.radius, float(p.eps), *t, self._integ, self._ma, self._mb
        )

    def _tables(self, w: int, h: int) -> K.Tables:
        t = self._tabs.get((w, h))
        if t is None:
            t = self._tabs[(w, h)] = K.Tables(*_tables(h, MODEL_H), *_tables(w, MODEL_W))
        return t

    # ---------------------------------------------------------------- RGB
    def _run_rgb(
        self, frame: np.ndarray, bg: np.ndarray | None, want_alpha: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        h, w = frame.shape[:2]
        with self._lock:
            K.rgb_to_model_input(frame, self._inp, self._lum)
            self._infer()
            out = np.empty_like(frame)
            alpha = np.empty((h, w), np.uint8) if want_alpha else NO_ALPHA
            bgx = bg if bg is not None else out
            lumw = _LUMA * 1.0
            K.seg_rgb_rows(
                0, h, frame, bgx, lumw, self._ma, self._mb, self._tables(w, h), out, alpha,
                want_alpha,
            )  # fmt: skip
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
        out = check_pair_i420(frame, background, out, alpha_out)
        w, h = frame.size
        with self._lock:
            K.i420_to_model_input(frame.y, frame.u, frame.v, self._inp, self._lum)
            self._infer()
            want = alpha_out is not None
            args = (frame.planes, background.planes, self._ma, self._mb, self._tables(w, h))
            tail = (out.planes, alpha_out if want else NO_ALPHA, want)
            chunks = use_threads(self.params.threads) * 4
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
