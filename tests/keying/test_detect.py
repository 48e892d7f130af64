"""Screen detection: green/blue-screen avatars go to the chroma keyer, anything else to
segmentation, with the screen colour found."""

import numpy as np
import pytest

from greenroom.keying import I420Frame
from greenroom.keying.codec_roundtrip import roundtrip
from greenroom.keying.detect import ScreenDetector, detect_screen
from greenroom.keying.family import family_specs, render_clip

pytestmark = pytest.mark.unit

skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the photos")


@pytest.fixture(scope="module")
def family():
    return [render_clip(s) for s in family_specs(20, seed=5, width=320, height=180, frames=1)]


def _photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    return np.ascontiguousarray(img[..., :3])


def test_every_family_clip_is_a_screen_with_its_colour(family):
    for clip in family:
        frame = clip.frames[0]
        screen = clip.alphas[0] == 0
        lit = np.median(clip.screen[screen], axis=0)  # the screen as lit, falloff included
        for f in (frame, I420Frame.from_rgb(frame)):
            d = detect_screen(f)
            assert d.mode == "chroma", f"{clip.spec.name}: {d}"
            assert d.confidence >= 0.8
            assert d.key_color is not None
            assert np.abs(np.array(d.key_color) - lit).max() <= 8, (
                clip.spec.name,
                d.key_color,
                lit,
            )


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_detection_survives_the_codec(family, codec):
    clip = family[2]
    planes = roundtrip([clip.frames[0]], codec)[0]
    d = detect_screen(I420Frame(*planes))
    assert d.mode == "chroma" and d.confidence >= 0.8


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_ordinary_photographs_go_to_segmentation(name):
    d = detect_screen(_photo(name))
    assert d.mode == "segment" and d.confidence >= 0.9, d
    assert d.key_color is None


def test_textured_green_is_not_a_screen():
    """Foliage or a patterned green wall: green everywhere, but not smooth."""
    rng = np.random.default_rng(1)
    h, w = 180, 320
    leaves = rng.normal(0, 1, (h // 4, w // 4))
    leaves = np.kron(leaves, np.ones((4, 4)))  # leaf-sized blobs
    g = np.clip(140 + 45 * leaves, 0, 255)
    img = np.stack([0.35 * g, g, 0.3 * g], -1).astype(np.uint8)
    d = detect_screen(img)
    assert d.mode == "segment", d
    assert d.texture > 15


def test_a_photo_held_up_on_a_screen_is_still_a_screen(family):
    """A person photo pasted into a green-screen frame (a third of it) leaves the screen
    around it: still chroma."""
    frame = family[0].frames[0].copy()
    photo = _photo("astronaut")[::4, ::4]  # 128 x 128
    frame[40:168, 100:228] = photo
    assert detect_screen(frame).mode == "chroma"


def test_detector_holds_its_decision_through_an_odd_frame(family):
    det = ScreenDetector(interval=1)
    photo = _photo("coffee")[:180, :320]
    for _ in range(4):
        assert det.update(family[0].frames[0]).mode == "chroma"
    assert det.update(photo).mode == "chroma"  # one odd frame does not flip it
    for _ in range(6):
        d = det.update(photo)
    assert d.mode == "segment" and d.key_color is None
    assert set(d.as_dict()) >= {"mode", "confidence", "key_color", "coverage", "border"}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="frame must be"):
        detect_screen(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="interval"):
        ScreenDetector(interval=0)
