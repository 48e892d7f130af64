import time

import numpy as np
import pytest

from greenroom.backgrounds import BackgroundSpec, open_background
from greenroom.errors import InvalidInput
from greenroom.keying import I420Frame

from .media import colour_seconds_mp4, two_halves_png

pytestmark = pytest.mark.unit


def _rgb_at(frame: I420Frame, x: int, y: int) -> np.ndarray:
    return frame.to_rgb()[y, x].astype(int)


def test_colour_and_none():
    src = open_background("#0044ff")
    f = src.frame_i420(64, 36, 0.0, None)
    assert np.abs(_rgb_at(f, 10, 10) - (0, 0x44, 0xFF)).max() <= 2
    assert open_background("none").frame_i420(64, 36, 0.0, f) is None


def test_image_cover_crops_and_contain_letterboxes(tmp_path):
    path = two_halves_png(tmp_path / "halves.png")  # 2:1
    cover = open_background(BackgroundSpec.parse(f"image:{path}")).frame_i420(100, 100, 0.0, None)
    assert np.abs(_rgb_at(cover, 10, 50) - (255, 0, 0)).max() <= 6
    assert np.abs(_rgb_at(cover, 90, 50) - (0, 0, 255)).max() <= 6
    contain = open_background(BackgroundSpec.parse(f"image:{path}#contain")).frame_i420(
        100, 100, 0.0, None
    )
    assert np.abs(_rgb_at(contain, 50, 5) - (0, 0, 0)).max() <= 3  # letterbox band
    assert np.abs(_rgb_at(contain, 10, 50) - (255, 0, 0)).max() <= 6


def test_image_is_cached_per_output_size(tmp_path):
    src = open_background(f"image:{two_halves_png(tmp_path / 'h.png')}")
    a = src.frame_i420(64, 36, 0.0, None)
    assert src.frame_i420(64, 36, 1.0, None) is a
    assert src.frame_i420(32, 18, 1.0, None).size == (32, 18)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_missing_or_unreadable_files_are_refused(tmp_path, kind):
    with pytest.raises(InvalidInput, match="does not exist") as err:
        open_background(f"{kind}:{tmp_path / 'nope.bin'}")
    assert err.value.field == "background"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(InvalidInput, match="cannot read"):
        open_background(f"{kind}:{junk}")


def test_video_loops_and_follows_time(tmp_path):
    path = colour_seconds_mp4(tmp_path / "rb.mp4", [(255, 0, 0), (0, 0, 255)])
    src = open_background(f"video:{path}")

    def play(t0: float, t1: float) -> np.ndarray:
        """Call it like a 20 fps renderer would, from t0 to t1; the colour at t1."""
        frame = None
        for t in np.arange(t0, t1 + 1e-9, 0.05):
            frame = src.frame_i420(64, 36, float(t), None)
            time.sleep(0.01)  # the decoder thread runs ahead meanwhile
        assert frame is not None
        return _rgb_at(frame, 32, 18)

    try:
        assert np.abs(play(100.0, 100.0) - (255, 0, 0)).max() <= 20  # time starts at first call
        assert np.abs(play(100.05, 101.5) - (0, 0, 255)).max() <= 20
        assert np.abs(play(101.55, 102.5) - (255, 0, 0)).max() <= 20  # looped
    finally:
        src.close()


def test_blur_of_the_avatar_frame_is_smooth_and_keeps_the_mean():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    avatar = I420Frame.from_rgb(rgb)
    out = open_background("blur:20").frame_i420(128, 72, 0.0, avatar)
    assert out.size == avatar.size
    assert out.y.std() < 0.2 * avatar.y.std()
    assert abs(float(out.y.mean()) - float(avatar.y.mean())) < 3
