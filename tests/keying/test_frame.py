import numpy as np
import pytest

from greenroom.keying import I420Frame
from greenroom.keying.frame import rgb_to_yuv

pytestmark = pytest.mark.unit


def test_rgb_round_trip_is_close():
    rng = np.random.default_rng(1)
    # smooth content: 4:2:0 keeps it; noise would not survive chroma subsampling
    yy, xx = np.mgrid[0:64, 0:96]
    rgb = np.stack([xx * 2, yy * 3, (xx + yy)], -1).astype(np.uint8)
    rgb = np.clip(rgb.astype(int) + rng.integers(-1, 2, rgb.shape), 16, 235).astype(np.uint8)
    back = I420Frame.from_rgb(rgb).to_rgb()
    assert np.abs(back.astype(int) - rgb).mean() < 3.0


def test_blank_colour_matches_bt601_limited():
    f = I420Frame.blank(10, 6, (0, 177, 64))
    assert (f.y == rgb_to_yuv((0, 177, 64))[0]).all()
    assert rgb_to_yuv((0, 0, 0)) == (16, 128, 128)
    assert rgb_to_yuv((255, 255, 255)) == (235, 128, 128)
    assert np.abs(f.to_rgb().astype(int) - (0, 177, 64)).max() <= 2


def test_from_buffer_is_zero_copy_and_to_bytes_round_trips():
    buf = bytearray(I420Frame.nbytes_for(8, 4))
    f = I420Frame.from_buffer(buf, 8, 4)
    f.y[0, 0] = 200
    assert buf[0] == 200
    assert f.u.shape == (2, 4) and f.v.shape == (2, 4)
    assert I420Frame.from_buffer(f.to_bytes(), 8, 4).to_bytes() == bytes(buf)


def test_odd_sizes_have_rounded_up_chroma():
    rgb = np.zeros((5, 7, 3), np.uint8)
    f = I420Frame.from_rgb(rgb)
    assert f.u.shape == (3, 4)
    assert f.to_rgb().shape == (5, 7, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: I420Frame.from_buffer(b"\0" * 10, 8, 4), "needs 48 bytes"),
        (lambda: I420Frame.from_rgb(np.zeros((4, 4), np.uint8)), "(H, W, 3)"),
        (lambda: I420Frame.from_rgb(np.zeros((4, 4, 3), np.float32)), "uint8"),
        (
            lambda: I420Frame(
                np.zeros((4, 4), np.uint8), np.zeros((1, 1), np.uint8), np.zeros((2, 2), np.uint8)
            ),
            "chroma planes must be 2x2",
        ),
    ],
)
def test_bad_input_is_refused_with_a_reason(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()
