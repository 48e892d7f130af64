"""``add_background``'s argument checks (each error names its field, before anything joins
or waits) and ``classify_frame``, the choice behind ``mode="auto"``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from greenroom.agents import add_background, classify_frame
from greenroom.avatars.local import AvatarRenderer
from greenroom.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"background": "#0f0"}, "background", "#0f0"),
        ({"background": "#00ff00ff"}, "background", "colour"),
        ({"background": "office"}, "background", "not a background"),
        ({"background": "office.jpg"}, "background", "office.jpg"),
        ({"background": "video:/nowhere/loop.mp4"}, "background", "does not exist"),
        ({"background": {"kind": "color", "color": "blue"}}, "background", "#RRGGBB"),
        ({"background": 42}, "background", "spec string"),
        ({"mode": "fast"}, "mode", "auto, chroma, segment"),
        ({"avatar": 42}, "avatar", "int"),
        ({"avatar": " "}, "avatar", "empty"),
        ({"timeout": 0}, "timeout", "> 0"),
        ({"options": {"mode": "chroma"}}, "options", "CompositorOptions"),
    ],
)
async def test_bad_input_names_the_field(
    kwargs: dict[str, object], field: str, words: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # "office.jpg" is looked for in an empty folder
    args: dict[str, object] = {"avatar": "presenter", "background": "#0044ff", **kwargs}
    with pytest.raises(InvalidInput) as err:
        await add_background(rtc.Room(), **args)  # type: ignore[arg-type]
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    assert words in str(err.value)


async def test_the_room_must_be_connected() -> None:
    with pytest.raises(InvalidInput) as err:
        await add_background(rtc.Room(), avatar="presenter", background="#0044ff")
    assert err.value.field == "room" and "not connected" in str(err.value)
    with pytest.raises(InvalidInput) as err:
        await add_background("room-1", background="#0044ff")  # type: ignore[arg-type]
    assert err.value.field == "room"


def _avatar_frame(background: np.ndarray | None) -> np.ndarray:
    rgb, alpha = AvatarRenderer(640, 360, seed=7).render(1.0, 0.3, noise=False)
    if background is None:
        return rgb
    a = alpha[..., None].astype(np.float32)
    return (rgb * a + background * (1 - a)).astype(np.uint8)


def test_green_screen_is_chroma() -> None:
    key = classify_frame(_avatar_frame(None))
    assert key is not None
    r, g, b = key
    assert g > r + 60 and g > b + 60


def test_blue_screen_is_chroma() -> None:
    blue = np.broadcast_to(np.array([20, 60, 220], np.float32), (360, 640, 3))
    key = classify_frame(_avatar_frame(blue))
    assert key is not None and key[2] > 180


def test_ordinary_room_is_segment() -> None:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:360, 0:640]
    wall = np.stack([150 + xx / 16, 140 + yy / 12, 120 + xx / 20], -1)  # a warm, lit wall
    room = np.clip(wall + rng.normal(0, 8, wall.shape), 0, 255)
    room[:, 500:560] = (40, 90, 60)  # a plant: green, but a small share of the border
    assert classify_frame(_avatar_frame(room)) is None


def test_classify_frame_checks_its_input() -> None:
    with pytest.raises(InvalidInput) as err:
        classify_frame(np.zeros((10, 10), np.uint8))
    assert err.value.field == "rgb"
