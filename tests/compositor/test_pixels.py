"""What a viewer sees: the chosen background where the avatar's alpha is 0, the avatar
where it is 1, compared against the synthetic avatar's true alpha (allowing codec error)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor import Compositor
from greenroom.compositor.synthetic import SKIN

from .conftest import FIRST_FRAME, Target, Viewer, one_layer, region_masks

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)


def _mean_abs(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> float:
    return float(np.abs(rgb[mask].astype(np.int16) - np.array(color, np.int16)).mean())


async def _known_frame(
    viewer: Viewer, comp: Compositor, avatar
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A full-size composited frame whose avatar capture time we know, and the masks of
    sure background and sure avatar from the avatar's true alpha at that time."""
    await comp.wait_first_frame(FIRST_FRAME)
    frame = await viewer.until(
        comp.identity,
        lambda f: f.rgb.shape == (720, 1280, 3) and f.user_timestamp in avatar._capture_t,
        timeout=60,
    )
    alpha = avatar.scene.alpha(avatar.time_of(frame.user_timestamp))
    bg, fg = region_masks(alpha, margin=12)
    return frame, bg, fg


async def test_viewer_sees_background_behind_the_avatar(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    avatar = await synthetic_avatar("avatar-a", flash=False)
    comp = await Compositor.start(target, "avatar-a", BackgroundSpec.parse("#0044ff"), one_layer())
    try:
        frame, bg, fg = await _known_frame(viewer, comp, avatar)
        assert bg.sum() > 100_000 and fg.sum() > 20_000
        bg_err = _mean_abs(frame.rgb, bg, BLUE)
        fg_err = _mean_abs(frame.rgb, fg, SKIN)
        assert bg_err < 20, f"background differs from #0044ff by {bg_err:.1f} on average"
        assert fg_err < 25, f"avatar differs from its true colour by {fg_err:.1f} on average"
        # and almost no green survives anywhere in the background
        greenish = (frame.rgb[..., 1].astype(int) - frame.rgb[..., 2] > 60) & bg
        assert greenish.mean() < 0.001
        png = comp.snapshot_png()
        assert png is not None and png.startswith(b"\x89PNG")
        m = comp.metrics()
        assert m["frames_out"] > 0 and m["latency_ms_p50"] is not None
    finally:
        await comp.aclose()


async def test_auto_mode_keys_the_green_screen_and_says_so(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    """``mode="auto"``: the synthetic avatar stands on a green screen, so the compositor
    keys it by colour, and its metrics and attributes say which keyer and why."""
    import json

    from greenroom.compositor import ATTR_KEYER

    avatar = await synthetic_avatar("avatar-auto", flash=False, audio=False)
    comp = await Compositor.start(
        target, "avatar-auto", BackgroundSpec.parse("#0044ff"), one_layer(mode="auto")
    )
    try:
        frame, bg, fg = await _known_frame(viewer, comp, avatar)
        assert _mean_abs(frame.rgb, bg, BLUE) < 20
        assert _mean_abs(frame.rgb, fg, SKIN) < 25
        keyer = comp.metrics()["keyer"]
        assert isinstance(keyer, dict)
        assert keyer["mode"] == "auto" and keyer["in_use"] == "chroma", keyer
        assert keyer["decision"]["mode"] == "chroma" and keyer["decision"]["confidence"] > 0.5
        room = comp.room
        assert room is not None
        attr = room.local_participant.attributes.get(ATTR_KEYER)
        assert attr is not None and json.loads(attr) == {"mode": "auto", "in_use": "chroma"}
    finally:
        await comp.aclose()


async def test_viewer_sees_image_background(
    target: Target, viewer: Viewer, synthetic_avatar, tmp_path
) -> None:
    from PIL import Image

    # a picture with structure (a gradient and a bar), made here; same size as the video
    x = np.linspace(0, 1, 1280, dtype=np.float32)[None, :, None]
    image = (np.array([230, 40, 30]) * (1 - x) + np.array([20, 60, 220]) * x).repeat(720, 0)
    image[300:420] = (250, 230, 40)
    image = image.astype(np.uint8)
    path = tmp_path / "bg.png"
    Image.fromarray(image).save(path)

    avatar = await synthetic_avatar("avatar-img", flash=False, audio=False)
    comp = await Compositor.start(target, "avatar-img", f"image:{path}", one_layer())
    try:
        frame, bg, fg = await _known_frame(viewer, comp, avatar)
        bg_err = float(np.abs(frame.rgb[bg].astype(np.int16) - image[bg]).mean())
        assert bg_err < 20, f"background differs from the image by {bg_err:.1f} on average"
        assert _mean_abs(frame.rgb, fg, SKIN) < 25
    finally:
        await comp.aclose()
