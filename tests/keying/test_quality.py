"""Quality regression guards on the synthetic clip (bounds sit above what is measured).

Measured on 1280x720, 8 frames (see docs/benchmarks.md for the full clip): MAD RGB ~0.65e-3,
I420 ~0.8e-3; after H.264 4:2:0 ~1.6e-3 against ffmpeg chromakey's ~2.0e-3.
"""

import sys
from pathlib import Path

import pytest

from greenroom.keying import ChromaKeyer, I420Frame
from greenroom.keying.metrics import score_clip
from greenroom.keying.synthetic import SyntheticClip, h264_roundtrip

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _ffmpeg import ffmpeg_alpha

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def clip():
    c = SyntheticClip(1280, 720)
    frames, alphas = zip(*(c.frame(n) for n in range(8)), strict=True)
    return list(frames), list(alphas), h264_roundtrip(list(frames))


def test_clean_clip_rgb_path(clip):
    frames, gts, _ = clip
    k = ChromaKeyer()
    r = score_clip([k.matte(f) for f in frames], gts)
    assert r["mad"] < 1.0e-3
    assert r["dtssd"] < 1.6e-2
    assert r["edge_mad"] < 40e-3


def test_clean_clip_i420_path(clip):
    frames, gts, _ = clip
    k = ChromaKeyer()
    r = score_clip([k.matte_i420(I420Frame.from_rgb(f)) for f in frames], gts, grad=False)
    assert r["mad"] < 1.2e-3
    assert r["dtssd"] < 2.3e-2


def test_after_h264_beats_ffmpeg_on_the_same_frames(clip):
    _frames, gts, decoded = clip
    k = ChromaKeyer()
    ours = score_clip([k.matte_i420(I420Frame(*p)) for p in decoded], gts, grad=False)
    theirs = score_clip(ffmpeg_alpha(decoded, (0, 177, 64)), gts, grad=False)
    assert ours["mad"] < 0.9 * theirs["mad"]
    assert ours["dtssd"] < 0.9 * theirs["dtssd"]
    assert ours["mad"] < 2.0e-3
