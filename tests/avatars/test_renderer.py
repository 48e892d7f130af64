"""The procedural presenter: exact alpha, keyer-hostile details, speed-independent checks."""

from __future__ import annotations

import numpy as np
import pytest

from greenroom.avatars.local import SCREEN_RGB, AvatarRenderer
from greenroom.avatars.local.participant import PUBLISHED_NOISE, renderer_for
from greenroom.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def renderer() -> AvatarRenderer:
    return AvatarRenderer(1280, 720, 30)


def test_alpha_composites_back_to_the_frame(renderer: AvatarRenderer) -> None:
    fg, alpha = renderer.foreground(1.3, mouth=0.6)
    rebuilt = fg + (1.0 - alpha[..., None]) * renderer.screen
    clean, clean_alpha = renderer.render(1.3, mouth=0.6, noise=False)
    assert np.array_equal(alpha, clean_alpha)
    assert np.abs(rebuilt - clean).max() <= 0.5 + 1e-3  # only rounding to 8 bits
    noisy, noisy_alpha = renderer.render(1.3, mouth=0.6)
    assert np.array_equal(alpha, noisy_alpha)
    diff = noisy.astype(np.float32) - rebuilt
    assert 1.0 < diff.std() < 3.0  # sensor noise, about 2 levels
    # near-zero red on the screen clips negative noise, hence a small positive mean
    assert abs(diff.mean()) < 0.3 and np.abs(diff).max() <= 12.5


def test_the_published_avatar_carries_less_grain() -> None:
    """What ``LocalAvatar`` publishes: the same picture with sigma PUBLISHED_NOISE of grain
    (its encoder pays for grain), while the renderer's default stays sigma 2 for keying tests."""
    published = renderer_for("default", 640, 360)
    assert published.noise_sigma == PUBLISHED_NOISE < 1.0
    clean, _ = published.render(1.3, mouth=0.6, noise=False)
    noisy, _ = published.render(1.3, mouth=0.6)
    diff = noisy.astype(np.float32) - clean
    assert 0.4 < diff.std() < 1.0
    assert AvatarRenderer(640, 360, 30).noise_sigma == 2.0


def test_alpha_puts_the_presenter_on_any_background(renderer: AvatarRenderer) -> None:
    fg, alpha = renderer.foreground(0.5)
    blue = np.zeros((720, 1280, 3), np.float32)
    blue[..., 2] = 255
    out = fg + (1.0 - alpha[..., None]) * blue
    assert out[5, 5].tolist() == [0, 0, 255]  # background where alpha is 0
    face = renderer.mouth_region()
    y, x = (face[0] + face[1]) // 2, face[2] + 4  # cheek beside the mouth: skin, opaque
    assert alpha[y, x] == pytest.approx(1.0)
    assert out[y, x, 0] > out[y, x, 2]  # skin is warm, not blue


def test_edges_are_soft_with_fine_partial_hair(renderer: AvatarRenderer) -> None:
    _, alpha = renderer.render(0.0)
    partial = (alpha > 0.02) & (alpha < 0.98)
    assert partial.sum() > 5000  # anti-aliased outline and hair
    # above the top of the hair only stray strands exist: thin, never opaque
    _, _, x0, x1 = renderer.mouth_region()
    strands = alpha[: int(0.13 * 720), x0 - 150 : x1 + 150]
    assert (strands > 0.02).sum() > 100
    assert strands.max() < 0.9
    assert alpha[0].max() == 0 and alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0


def test_screen_is_green_and_unevenly_lit(renderer: AvatarRenderer) -> None:
    frame, alpha = renderer.render(0.0)
    screen = renderer.screen.astype(int)
    bg = alpha == 0
    g, r, b = screen[..., 1][bg], screen[..., 0][bg], screen[..., 2][bg]
    assert (g > r + 80).all() and (g > b + 50).all()
    assert g.max() - g.min() > 30  # hot spot, fall-off, shadow
    assert abs(int(np.median(g)) - SCREEN_RGB[1]) < 30
    border = np.concatenate([frame[0], frame[:, 0], frame[:, -1]]).astype(int)
    assert (border[:, 1] > border[:, 0] + 60).all()


def test_green_spill_on_the_edges(renderer: AvatarRenderer) -> None:
    fg, alpha = renderer.foreground(0.0)
    edge = (alpha > 0.9) & (alpha < 0.999)
    inner = alpha >= 0.9999
    straight = fg / np.maximum(alpha, 1e-6)[..., None]
    greenness = straight[..., 1] - 0.5 * (straight[..., 0] + straight[..., 2])
    assert greenness[edge].mean() > greenness[inner].mean() + 5


def test_mouth_opens_without_touching_alpha(renderer: AvatarRenderer) -> None:
    closed, a0 = renderer.render(2.0, mouth=0.0, noise=False)
    opened, a1 = renderer.render(2.0, mouth=1.0, noise=False)
    assert np.array_equal(a0, a1)
    changed = np.argwhere(np.abs(closed.astype(int) - opened).sum(axis=2) > 0)
    y0, y1, x0, x1 = renderer.mouth_region()
    assert len(changed) > 500
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1


def test_eyes_blink_and_head_moves(renderer: AvatarRenderer) -> None:
    times = np.arange(0, 12, 1 / 30)
    levels = [renderer.pose(t)[4] for t in times]
    assert max(levels) == 4 and levels.count(0) > 0.8 * len(levels)  # short, full blinks
    t_closed = times[levels.index(4)]
    shut, _ = renderer.render(t_closed, noise=False)
    open_, _ = renderer.render(t_closed - 0.3, noise=False)
    y0 = renderer.mouth_region()[0]
    assert np.abs(shut[:y0].astype(int) - open_[:y0]).sum() > 0
    _, a_start = renderer.render(0.0)
    _, a_later = renderer.render(2.0)
    cols = np.arange(1280)
    shift = (a_later.sum(0) @ cols) / a_later.sum() - (a_start.sum(0) @ cols) / a_start.sum()
    assert 0.02 < abs(shift) < 10  # slight idle sway, not a jump


def test_i420_matches_rgb(renderer: AvatarRenderer) -> None:
    rgb, alpha = renderer.render(0.7, mouth=0.3, noise=False)
    buf, alpha2 = renderer.render_i420(0.7, mouth=0.3, noise=False)
    assert buf.shape == (1280 * 720 * 3 // 2,) and np.array_equal(alpha, alpha2)
    y = buf[: 1280 * 720].reshape(720, 1280).astype(float)
    f = rgb.astype(float)
    expect = 16 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255
    assert np.abs(y - expect).max() < 1.5
    no_alpha, none = renderer.render_i420(0.7, mouth=0.3, noise=False, want_alpha=False)
    assert none is None and np.array_equal(no_alpha, buf)


def test_naive_anchor_draws_the_same_picture() -> None:
    r = AvatarRenderer(640, 360, 30)
    fast, _ = r.render(1.0, mouth=0.5, noise=False)
    slow = r.render_naive(1.0, mouth=0.5)
    assert np.abs(fast.astype(float) - slow).mean() < 2.5  # the anchor adds its own noise


def test_size_and_rate_are_configurable_and_checked() -> None:
    small = AvatarRenderer(640, 360, 25)
    frame, alpha = small.render(0.0)
    assert frame.shape == (360, 640, 3) and alpha.shape == (360, 640)
    with pytest.raises(InvalidInput) as e:
        AvatarRenderer(641, 360)
    assert e.value.field == "width"
    with pytest.raises(InvalidInput) as e:
        AvatarRenderer(640, 10)
    assert e.value.field == "height"
    with pytest.raises(InvalidInput) as e:
        AvatarRenderer(640, 360, 0)
    assert e.value.field == "fps"


def test_renderers_of_one_look_share_layers_but_not_working_buffers() -> None:
    a = AvatarRenderer(320, 180, 30.0, seed=11)
    b = AvatarRenderer(320, 180, 30.0, seed=11)
    assert b.head is a.head and b._work is not a._work
    ref, ref_alpha = b.render(1.0, 0.5)
    a.render(2.0, 1.0, 0.1)  # another mouth and blink pasted into a's working layer
    again, again_alpha = b.render(1.0, 0.5)
    assert np.array_equal(ref, again) and np.array_equal(ref_alpha, again_alpha)
