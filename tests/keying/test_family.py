"""The clip family is a trustworthy instrument: seeded, varied, and its truth is exact."""

import numpy as np
import pytest

from greenroom.keying.codec_roundtrip import roundtrip
from greenroom.keying.family import (
    NEAR_KEY,
    SCREENS,
    family_specs,
    mix_chart,
    render_clip,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fast_clip():
    spec = next(s for s in family_specs(12) if s.fast and s.hand)
    return render_clip(spec)


def test_specs_are_seeded_and_cover_the_family():
    a, b = family_specs(20, seed=3), family_specs(20, seed=3)
    assert a == b
    assert family_specs(20, seed=4) != a
    assert {s.screen_name for s in a} == set(SCREENS)
    assert {s.shirt_name for s in a} & NEAR_KEY == NEAR_KEY
    assert any(s.fast for s in a) and any(not s.fast for s in a)
    assert all(0.10 <= s.falloff <= 0.14 for s in a)
    assert len({s.name for s in a}) == 20


def test_rendering_is_deterministic():
    spec = family_specs(2, width=160, height=90, frames=2)[1]
    c1, c2 = render_clip(spec), render_clip(spec)
    assert all(np.array_equal(x, y) for x, y in zip(c1.frames, c2.frames, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(c1.alphas, c2.alphas, strict=True))


def test_frames_obey_the_compositing_equation(fast_clip):
    """Before noise, I = alpha F + (1 - alpha) S; the noise is sensor-sized."""
    spec = fast_clip.spec
    for frame, a, f in zip(fast_clip.frames, fast_clip.alphas, fast_clip.foregrounds, strict=True):
        assert frame.dtype == np.uint8 and a.dtype == np.float32
        assert a.min() >= 0.0 and a.max() <= 1.0
        screen_only = a == 0
        resid = frame[screen_only].astype(np.float32) - fast_clip.screen[screen_only]
        assert abs(float(resid.mean())) < 0.3
        assert float(resid.std()) == pytest.approx(spec.noise, rel=0.25)
        solid = a == 1
        # the true foreground is the spill-free colour; the picture has spill at the edge
        assert float(np.abs(frame[solid].astype(np.float32) - f[solid]).mean()) < 12


def test_fast_motion_blurs_edges_into_partial_alpha(fast_clip):
    a = fast_clip.alphas[2]
    blurred = (a > 0.2) & (a < 0.8)
    assert blurred.mean() > 0.004  # wide soft edges, not a 1-pixel anti-aliased line


def test_faint_hair_has_true_alpha_in_its_range():
    clip = render_clip(family_specs(1, frames=1)[0])
    a = clip.alphas[0]
    faint = (a >= 0.05) & (a <= 0.2)
    assert faint.sum() > 100
    # faint pixels live above the head, where the body is not
    ys = np.nonzero(faint)[0]
    assert np.median(ys) < clip.spec.height * 0.45


def test_mix_chart_is_linear():
    rgb, a = mix_chart((0, 177, 64), [(205, 150, 125)], noise=0.0)
    row = a.shape[0] // 2 - 10
    ramp = (a[row] > 0) & (a[row] < 1)
    assert ramp.sum() >= 2 * (4 + 8 + 16 + 32) - 8
    assert (a[row] == 1).sum() == 4 * 24
    f, s = np.array([205, 150, 125]), np.array([0, 177, 64])
    want = a[row, ramp, None] * f + (1 - a[row, ramp, None]) * s
    assert np.abs(rgb[row, ramp] - want).max() <= 0.51


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_codec_roundtrip_is_lossy_420_at_live_rates(codec):
    clip = render_clip(family_specs(1, width=320, height=180, frames=3)[0])
    out = roundtrip(clip.frames, codec)
    assert len(out) == 3
    y, u, v = out[0]
    assert y.shape == (180, 320) and u.shape == (90, 160) and v.shape == (90, 160)
    # lossy but recognisable: luma close to the source's
    src_y = (
        0.257 * clip.frames[0][..., 0]
        + 0.504 * clip.frames[0][..., 1]
        + 0.098 * clip.frames[0][..., 2]
        + 16
    )
    err = np.abs(y.astype(np.float32) - src_y).mean()
    assert 0.3 < err < 8.0


def test_a_clip_continues_from_its_past(fast_clip):
    """Frames rendered from a negative start are the same scene earlier in time: the last of
    them lead into the clip's first frame with the motion between any two frames."""
    from dataclasses import replace

    spec = fast_clip.spec
    past = render_clip(replace(spec, frames=3), start=-2)
    assert np.array_equal(past.alphas[2], fast_clip.alphas[0])
    assert not np.array_equal(past.alphas[1], fast_clip.alphas[0])
    step_in = np.abs(past.alphas[1] - fast_clip.alphas[0]).mean()
    step_on = np.abs(fast_clip.alphas[0] - fast_clip.alphas[1]).mean()
    assert 0.5 < step_in / step_on < 2.0


def test_codec_lead_in_is_encoded_first_and_not_returned():
    spec = family_specs(1, width=320, height=180, frames=3)[0]
    clip, past = render_clip(spec), render_clip(spec, start=-3)
    out = roundtrip(clip.frames, "vp8", lead_in=past.frames)
    assert len(out) == 3
    plain = roundtrip(clip.frames, "vp8", lead_in=[])  # the clip's first frame is a key frame
    assert not np.array_equal(out[0][0], plain[0][0])
    with pytest.raises(ValueError, match="lead_in"):
        roundtrip(clip.frames, "vp8", lead_in=[np.zeros((16, 16, 3), np.uint8)])


def test_codec_roundtrip_is_reproducible():
    clip = render_clip(family_specs(2, width=320, height=180, frames=3)[1])
    for codec in ("vp8", "h264"):
        a, b = roundtrip(clip.frames, codec), roundtrip(clip.frames, codec)
        for x, y in zip(a, b, strict=True):
            assert all(np.array_equal(p, q) for p, q in zip(x, y, strict=True)), codec


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="n must"):
        family_specs(0)
    with pytest.raises(ValueError, match="width and height"):
        family_specs(2, width=63)
    with pytest.raises(ValueError, match="codec"):
        roundtrip([np.zeros((16, 16, 3), np.uint8)], "av1")


def test_chromakey_reimplementation_matches_the_ffmpeg_binary():
    """The bench picks ffmpeg's setting on the re-implementation, so it must agree with the
    binary (to a level, away from the frame border where ffmpeg reuses stale taps)."""
    from greenroom.keying import I420Frame
    from greenroom.keying.ffmpeg_ref import chromakey_alpha, chromakey_diff, ffmpeg_alpha

    spec = family_specs(5, width=320, height=180, frames=1)[4]  # a blue screen
    clip = render_clip(spec)
    f = I420Frame.from_rgb(clip.frames[0])
    planes = (f.y, f.u, f.v)
    for sim, blend in ((0.05, 0.05), (0.11, 0.1)):
        theirs = ffmpeg_alpha([planes], spec.screen, sim, blend)[0].astype(int)
        ours = chromakey_alpha(chromakey_diff(planes, spec.screen), sim, blend).astype(int)
        diff = np.abs(theirs - ours)[2:-2, 2:-2]
        assert (diff > 1).mean() < 0.005, (sim, blend, (diff > 1).mean())
