"""Fixtures for the avatar tests: a green-screen clip made in code."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from greenroom.avatars.local import AvatarRenderer


def write_green_clip(
    path: Path, *, seconds: float = 2.0, fps: int = 15, size: tuple[int, int] = (320, 180)
) -> Path:
    """Render the built-in presenter into an MP4 (MPEG-4 video + AAC 440 Hz tone)."""
    w, h = size
    r = AvatarRenderer(w, h, fps)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.bit_rate = 1_000_000
        aus = c.add_stream("aac", rate=48000)
        aus.layout = "mono"
        n_frames = int(seconds * fps)
        for i in range(n_frames):
            rgb, _ = r.render(i / fps, mouth=0.5 * (1 + np.sin(i / 3)))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for p in vs.encode(frame):
                c.mux(p)
        t = np.arange(int(seconds * 48000)) / 48000
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for k in range(0, len(tone), 1024):
            chunk = tone[k : k + 1024]
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate = 48000
            af.pts = k
            af.time_base = Fraction(1, 48000)
            for p in aus.encode(af):
                c.mux(p)
        for s in (vs, aus):
            for p in s.encode(None):
                c.mux(p)
    return path


@pytest.fixture(scope="session")
def green_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 320x180, 15 fps green-screen clip with a 440 Hz tone."""
    return write_green_clip(tmp_path_factory.mktemp("clips") / "presenter.mp4")
