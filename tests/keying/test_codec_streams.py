"""Streams that went through a block codec: the chroma keyer recognises them by the grid
their flat areas keep, and steepens its edges for them only, which brings its matte closer
to the truth (the codec blurred the chroma across the edges, not the edges themselves)."""

import numpy as np
import pytest
from scipy import ndimage

from greenroom.keying import ChromaKeyer, I420Frame, chroma
from greenroom.keying.codec_roundtrip import roundtrip
from greenroom.keying.family import family_specs, render_clip

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def clips():
    return [render_clip(s) for s in family_specs(4, seed=7, width=640, height=360, frames=8)]


def _key(frames: list[I420Frame]) -> tuple[ChromaKeyer, list[np.ndarray]]:
    keyer = ChromaKeyer()
    return keyer, [keyer.matte_i420(f) for f in frames]


def _mad(mattes: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(
        np.mean([np.abs(m / 255.0 - t).mean() for m, t in zip(mattes, truth, strict=True)])
    )


def test_a_clean_render_is_not_taken_for_a_codec(clips):
    for clip in clips:
        keyer, _ = _key([I420Frame.from_rgb(f) for f in clip.frames])
        assert keyer.block_codec == 0.0, clip.spec.name


def test_one_codec_frame_does_not_leave_the_codec_rules_on(clips):
    """A stream that showed a codec's grid once and then clean frames reads 0 again."""
    clip = clips[0]
    (coded,) = roundtrip(clip.frames[:1], "vp8")
    keyer = ChromaKeyer()
    keyer.matte_i420(I420Frame(*coded))
    assert keyer.block_codec > 0.0
    clean = I420Frame.from_rgb(clip.frames[0])
    for _ in range(60):
        keyer.matte_i420(clean)
    assert keyer.block_codec == 0.0


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_a_codec_stream_is_recognised_and_keyed_closer_to_the_truth(clips, codec, monkeypatch):
    steep, plain = [], []
    for clip in clips:
        frames = [I420Frame(*p) for p in roundtrip(clip.frames, codec)]
        truth = [a.astype(np.float64) for a in clip.alphas]
        keyer, mattes = _key(frames)
        assert keyer.block_codec >= 0.5, (clip.spec.name, keyer.block_codec)
        steep.append(_mad(mattes, truth))
        with monkeypatch.context() as m:  # the same frames, edges left as the codec made them
            m.setattr(chroma, "CODEC_BLACK", 0.0)
            m.setattr(chroma, "CODEC_WHITE", 0.0)
            plain.append(_mad(_key(frames)[1], truth))
    assert np.mean(steep) < 0.95 * np.mean(plain), (steep, plain)


@pytest.mark.parametrize("flat_rules", [True, False])
def test_a_green_shirt_on_the_green_screen_stays_solid_after_vp8(flat_rules, monkeypatch):
    """VP8 pulls the flat green of the shirt towards the screen; the flat-patch rules keep
    it solid (less than 1 % of its inside under alpha 0.95), and without them (and without
    the foreground plate's fill from neighbouring cells, which finds part of the shirt's
    colour too) it is not."""
    (spec,) = [
        s
        for s in family_specs(24, seed=1, width=640, height=360, frames=6)
        if s.name.startswith("c05-avatar-green-green")
    ]
    clip = render_clip(spec)
    frames = [I420Frame(*p) for p in roundtrip(clip.frames, "vp8")]
    if not flat_rules:
        monkeypatch.setattr(chroma, "SOLID_FLAT", 1e9)
        monkeypatch.setattr(chroma, "FLAT_RADIUS", 0.0)
        monkeypatch.setattr(chroma, "FG_FILL", 0)
    keyer, mattes = _key(frames)
    assert keyer.block_codec > 0.0
    inside = [ndimage.binary_erosion(a >= 1.0, iterations=6) for a in clip.alphas]
    holes = float(np.mean([(m[i] < 242).mean() for m, i in zip(mattes, inside, strict=True)]))
    assert (holes < 0.01) == flat_rules, holes
