"""The alpha_packed frame: colour left, matte right as studio-range luma, neutral chroma."""

from __future__ import annotations

import numpy as np
import pytest

from greenroom.compositor import CompositorOptions
from greenroom.compositor.alpha_pack import blank_packed, pack, packed_size
from greenroom.errors import InvalidInput
from greenroom.keying import I420Frame

pytestmark = pytest.mark.unit


def test_pack_puts_colour_left_and_matte_right() -> None:
    w, h = 64, 36
    rng = np.random.default_rng(1)
    keyed = I420Frame.empty(w, h)
    keyed.y[...] = rng.integers(0, 256, keyed.y.shape)
    keyed.u[...] = rng.integers(0, 256, keyed.u.shape)
    keyed.v[...] = rng.integers(0, 256, keyed.v.shape)
    alpha = rng.integers(0, 256, (h, w)).astype(np.uint8)
    alpha[0, :3] = (0, 128, 255)
    out = pack(keyed, alpha, I420Frame.empty(*packed_size(w, h)))

    assert out.size == (128, 36)
    assert np.array_equal(out.y[:, :w], keyed.y)
    assert np.array_equal(out.u[:, : w // 2], keyed.u)
    assert np.array_equal(out.v[:, : w // 2], keyed.v)
    assert list(out.y[0, w : w + 3]) == [16, 126, 235]  # 0, 0.5, 1 in studio range
    want = 16 + (alpha.astype(int) * 219 + 127) // 255
    assert np.array_equal(out.y[:, w:], want)
    assert (out.u[:, w // 2 :] == 128).all() and (out.v[:, w // 2 :] == 128).all()
    # decoded as a browser does (BT.601 studio range), the matte half is grey = alpha
    decoded = (out.y[:, w:].astype(float) - 16) * 255 / 219
    assert np.abs(decoded - alpha).max() <= 1


def test_waiting_frame_is_transparent() -> None:
    f = I420Frame.from_buffer(blank_packed(32, 16), 64, 16)
    assert (f.y == 16).all() and (f.u == 128).all() and (f.v == 128).all()


def test_pack_refuses_mismatched_buffers() -> None:
    keyed = I420Frame.blank(32, 16)
    with pytest.raises(ValueError, match="alpha"):
        pack(keyed, np.zeros((16, 31), np.uint8), I420Frame.empty(64, 16))
    with pytest.raises(ValueError, match="out"):
        pack(keyed, np.zeros((16, 32), np.uint8), I420Frame.empty(32, 16))


def test_output_option_is_checked() -> None:
    with pytest.raises(InvalidInput) as err:
        CompositorOptions(output="rgba")  # type: ignore[arg-type]
    assert err.value.field == "output"
    with pytest.raises(InvalidInput) as err:
        CompositorOptions(output="alpha_packed", width=2560)
    assert err.value.field == "width"
