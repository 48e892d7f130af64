"""What the session benchmarks look for in a frame a viewer received."""

from __future__ import annotations

import numpy as np
from livekit import rtc

BACKGROUND = (0, 68, 255)  # #0044ff: the colour background of the benchmarks' templates


def shows_avatar(frame: rtc.VideoFrame, background: tuple[int, int, int] = BACKGROUND) -> bool:
    """True when the middle third of the picture is mostly not ``background``: the
    composited avatar is in it."""
    rgba = frame.convert(rtc.VideoBufferType.RGBA)
    img = np.frombuffer(rgba.data, np.uint8).reshape(rgba.height, rgba.width, 4)[..., :3]
    h, w, _ = img.shape
    centre = img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(np.int16)
    return bool((np.abs(centre - np.array(background)).max(axis=2) > 60).mean() > 0.2)
