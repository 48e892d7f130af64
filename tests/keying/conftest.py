"""Shared helpers for keying tests: small synthetic avatar frames with known alpha."""

from __future__ import annotations

import numpy as np
import pytest

from greenroom.keying.synthetic import SyntheticClip

GREEN = (0, 177, 64)
BLUE = (20, 60, 200)
SKIN = (205, 150, 125)


def flat_scene(w: int = 320, h: int = 180, screen=GREEN, fg=SKIN) -> tuple[np.ndarray, np.ndarray]:
    """A screen with one solid rectangle of ``fg``; returns (rgb, mask of the rectangle)."""
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = screen
    mask = np.zeros((h, w), bool)
    mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = True
    rgb[mask] = fg
    return rgb, mask


@pytest.fixture(scope="session")
def small_clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    clip = SyntheticClip(320, 180)
    frames, alphas = zip(*(clip.frame(n) for n in range(4)), strict=True)
    return list(frames), list(alphas)
