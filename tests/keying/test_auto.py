"""``mode="auto"``: the built-in avatar on a green or blue screen is keyed by colour, a
person in a room by segmentation, and the choice (with its reasons) is what the session's
metrics show. Blank frames at a stream's start do not decide anything."""

from __future__ import annotations

import numpy as np
import pytest

from greenroom.avatars.local import AvatarRenderer
from greenroom.backgrounds import BackgroundSpec, Scene
from greenroom.keying import I420Frame, Keyer
from greenroom.keying.auto import AutoKeyer
from greenroom.keying.detect import STARTUP_FRAMES, ScreenDetector, detect_screen

pytestmark = pytest.mark.unit

skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the photos")

W, H = 640, 360
BLUE_SCREEN = (20, 60, 220)


def _avatar(background: np.ndarray | tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The built-in avatar (RGB, alpha in 0..1) on its own green screen, or over
    ``background`` (a colour or an (H, W, 3) picture)."""
    rgb, alpha = AvatarRenderer(W, H, seed=7).render(1.0, 0.3, noise=False)
    a = alpha[..., None].astype(np.float32)
    if a.max() > 1.0:
        a = a / 255.0
    if background is None:
        return rgb, a[..., 0]
    bg = np.broadcast_to(np.asarray(background, np.float32), (H, W, 3))
    return (rgb * a + bg * (1 - a)).astype(np.uint8), a[..., 0]


def _room() -> np.ndarray:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:H, 0:W]
    wall = np.stack([150 + xx / 16, 140 + yy / 12, 120 + xx / 20], -1)  # a warm, lit wall
    room = np.clip(wall + rng.normal(0, 8, wall.shape), 0, 255)
    room[:, 500:560] = (40, 90, 60)  # a plant: green, but a small share of the picture
    return room


def _person() -> np.ndarray:
    """scikit-image's astronaut (public domain), cropped to 16:9."""
    img = np.ascontiguousarray(skdata.astronaut()[:288, :, :3])
    return np.ascontiguousarray(img)


def test_the_built_in_avatar_on_its_green_screen_is_chroma() -> None:
    d = detect_screen(_avatar(None)[0])
    assert d.mode == "chroma" and d.key_color is not None
    r, g, b = d.key_color
    assert g > r + 60 and g > b + 60


def test_the_built_in_avatar_on_a_blue_screen_is_chroma() -> None:
    d = detect_screen(_avatar(BLUE_SCREEN)[0])
    assert d.mode == "chroma" and d.key_color is not None and d.key_color[2] > 180


def test_the_built_in_avatar_in_a_room_is_segment() -> None:
    d = detect_screen(_avatar(_room())[0])
    assert d.mode == "segment" and d.key_color is None


def test_blank_frames_decide_nothing_and_the_start_is_an_average() -> None:
    det = ScreenDetector(interval=15)
    black = np.zeros((H, W, 3), np.uint8)
    assert det.update(black) is None  # a blank start: no decision yet
    assert det.update(I420Frame.blank(W, H, (0, 177, 64))) is None  # a waiting frame
    screen = _avatar(None)[0]
    room = _avatar(_room())[0]
    det.update(room)  # one odd frame among the first ones ...
    for _ in range(STARTUP_FRAMES - 1):
        d = det.update(screen)
    assert d is not None and d.mode == "chroma"  # ... is outvoted by the rest


def test_auto_keys_a_screen_by_colour_and_shows_why() -> None:
    frame, alpha = _avatar(None)
    scene = Scene(background=BackgroundSpec.parse("#FF8000"), mode="auto")
    assert scene.keyer_state()["in_use"] == "chroma" and scene.keyer_state()["decision"] is None
    out = None
    for i in range(3):
        out = scene.render_rgb(frame, t=i / 30)
    assert out is not None
    state = scene.keyer_state()
    assert state["mode"] == "auto" and state["in_use"] == "chroma"
    decision = state["decision"]
    assert isinstance(decision, dict) and decision["mode"] == "chroma"
    assert str(decision["key_color"]).startswith("#")
    screen = alpha < 0.01
    orange = np.abs(out[screen].astype(int) - (255, 128, 0)).max(axis=1) < 40
    assert orange.mean() > 0.97  # the screen is gone
    body = alpha > 0.99
    assert (np.abs(out[body].astype(int) - frame[body]).max(axis=1) < 40).mean() > 0.95


def test_auto_keys_a_person_in_a_room_by_segmentation() -> None:
    person = _person()
    h, w = person.shape[:2]
    keyer = AutoKeyer()
    white = np.full_like(person, 255)
    for _ in range(STARTUP_FRAMES):
        out = keyer.composite(person, white)
    assert keyer.mode == "segment" and keyer.key_color is None
    assert keyer.describe()["in_use"] == "segment"
    # the astronaut's face stays, the top corners of the room go white
    face = out[60:140, 200:280].astype(int)
    assert np.abs(face - person[60:140, 200:280]).mean() < 25
    corner = np.concatenate([out[:30, : w // 8].reshape(-1, 3), out[:30, -w // 8 :].reshape(-1, 3)])
    assert (corner.min(axis=1) > 200).mean() > 0.8, h


def test_reset_starts_a_new_decision() -> None:
    keyer = AutoKeyer()
    assert isinstance(keyer, Keyer)
    person = _person()
    bg = np.zeros_like(person)
    for _ in range(STARTUP_FRAMES):
        keyer.composite(person, bg)
    assert keyer.mode == "segment"
    keyer.reset()
    assert keyer.decision is None and keyer.mode == "chroma"
