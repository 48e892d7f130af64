"""Test media generated in code: images and short videos with known colours."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image


def two_halves_png(path: Path, w: int = 200, h: int = 100) -> Path:
    """Left half red, right half blue."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (255, 0, 0)
    rgb[:, w // 2 :] = (0, 0, 255)
    Image.fromarray(rgb).save(path)
    return path


def colour_seconds_mp4(
    path: Path, colours: list[tuple[int, int, int]], fps: int = 10, size=(64, 36)
) -> Path:
    """One second of each colour."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for c in colours:
            rgb = np.empty((size[1], size[0], 3), np.uint8)
            rgb[:] = c
            for _ in range(fps):
                for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path
