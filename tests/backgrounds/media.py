"""Test media generated in code: images and short videos with known colours."""

from __future__ import annotations

from fractions import Fraction
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


class _PipeSink:
    """A write-only file object: a muxer cannot seek back, as when it writes to a pipe."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)


def piped_mkv(seconds: int, fps: int = 1, size: tuple[int, int] = (16, 16)) -> bytes:
    """H.264 Matroska of ``seconds`` written to a pipe: no Duration element, no cues."""
    sink = _PipeSink()
    with av.open(sink, "w", format="matroska") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"preset": "ultrafast"}
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        for i in range(seconds * fps):
            rgb[:] = (i % 256, 80, 160)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return bytes(sink.data)


def sized_mp4(path: Path, width: int, height: int, frames: int = 1) -> bytes:
    """A black H.264 MP4 of ``width`` x ``height`` (an 8K one is ~100 KB)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast"}
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for _ in range(frames):
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path.read_bytes()


def encoded_video(path: Path, codec: str, container: str, frames: int = 5) -> bytes:
    """A small grey video with ``codec`` in ``container`` (e.g. ``mjpeg`` in ``matroska``)."""
    with av.open(str(path), "w", format=container) as out:
        s = out.add_stream(codec, rate=10)
        s.width, s.height = 32, 32
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        rgb = np.full((32, 32, 3), 128, np.uint8)
        for _ in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path.read_bytes()
