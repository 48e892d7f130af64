import threading

import numpy as np
import pytest

from greenroom.backgrounds import BackgroundSpec, Scene
from greenroom.errors import InvalidInput
from greenroom.keying import I420Frame

pytestmark = pytest.mark.unit

GREEN = (0, 177, 64)


def _avatar(w: int = 160, h: int = 90) -> tuple[I420Frame, np.ndarray]:
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = GREEN
    rgb[30:60, 60:100] = (205, 150, 125)
    return I420Frame.from_rgb(rgb), rgb


def _px(frame: I420Frame, x: int = 5, y: int = 5) -> np.ndarray:
    return frame.to_rgb()[y, x].astype(int)


def test_render_keys_onto_the_background_and_reports_state():
    scene = Scene(BackgroundSpec.parse("#0044ff"))
    f, _ = _avatar()
    out = scene.render_i420(f, 0.0)
    assert np.abs(_px(out) - (0, 0x44, 0xFF)).max() <= 3
    assert np.abs(_px(out, 80, 45) - (205, 150, 125)).max() <= 3
    assert scene.key_color is not None and scene.key_color[1] > 150
    assert scene.keying_ms > 0
    assert scene.background.kind == "color"


def test_crossfade_passes_through_a_mix():
    scene = Scene("#000000")
    f, _ = _avatar()
    scene.render_i420(f, 0.0)
    scene.set_background("#ffffff", transition=1.0)
    start = _px(scene.render_i420(f, 10.0))  # the fade starts at the next frame
    mid = _px(scene.render_i420(f, 10.5))
    end = _px(scene.render_i420(f, 11.1))
    assert start.max() <= 3 and 110 <= mid.min() <= 145 and end.min() >= 252
    assert not scene.transitioning


def test_crossfade_to_none_blends_with_the_raw_frame():
    scene = Scene("#000000")
    f, _ = _avatar()
    scene.set_background("none", transition=1.0)
    scene.render_i420(f, 0.0)
    mid = _px(scene.render_i420(f, 0.5))
    assert 2 < mid[1] < GREEN[1] - 2  # half way from black to the green screen
    end = scene.render_i420(f, 1.5)
    assert end.to_bytes() == f.to_bytes()


def test_bad_background_keeps_the_current_one():
    scene = Scene("#0044ff")
    f, _ = _avatar()
    with pytest.raises(InvalidInput) as err:
        scene.set_background("image:/does/not/exist.png")
    assert err.value.field == "background"
    with pytest.raises(InvalidInput) as err:
        scene.set_background("#ffffff", transition=-1)
    assert err.value.field == "transition"
    assert scene.background.color == "#0044ff"
    assert np.abs(_px(scene.render_i420(f, 0.0)) - (0, 0x44, 0xFF)).max() <= 3


def test_blur_and_rgb_render():
    scene = Scene("blur:10")
    f, rgb = _avatar()
    assert scene.render_i420(f, 0.0).size == f.size
    out = Scene("#ff0000").render_rgb(rgb, 0.0)
    assert out.shape == rgb.shape and np.abs(out[5, 5].astype(int) - (255, 0, 0)).max() <= 3


def test_mode_is_checked():
    with pytest.raises(InvalidInput) as err:
        Scene("#000000", mode="magic")  # type: ignore[arg-type]
    assert err.value.field == "mode"


def test_switching_from_another_thread_while_rendering():
    scene = Scene("#000000")
    f, _ = _avatar()
    errors: list[BaseException] = []

    def switch() -> None:
        try:
            for i in range(30):
                scene.set_background(f"#{i * 8:02x}0000", transition=0.05)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=switch)
    t.start()
    for n in range(60):
        out = scene.render_i420(f, n / 30)
        assert out.size == f.size
    t.join()
    assert not errors


@pytest.mark.parametrize("background", ["#0044ff", "blur:9"])
def test_frame_size_changes_mid_stream_and_odd_sizes(background):
    scene = Scene(background)
    for n, (w, h) in enumerate([(160, 90), (96, 54), (161, 91), (160, 90)]):
        f, _ = _avatar(w, h)
        out = scene.render_i420(f, n / 30)
        assert out.size == (w, h)
        if background.startswith("#"):
            assert np.abs(_px(out) - (0, 0x44, 0xFF)).max() <= 3
        assert np.abs(_px(out, 70, 40) - (205, 150, 125)).max() <= 3  # inside the avatar
