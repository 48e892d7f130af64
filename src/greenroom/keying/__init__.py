"""Keying: find the avatar in a frame and composite it over a background.

Pure frame maths (numpy + numba), no I/O and no asyncio. See ``docs/keying.md``.
"""

import logging

# Under a DEBUG root logger (LiveKit Agents' ``dev`` mode sets one), numba traces every step
# of its compiler: compiling our kernels then takes minutes and megabytes of log. Its own
# warnings still come through; a user who wants the trace sets the level after importing us.
if logging.getLogger("numba").level == logging.NOTSET:
    logging.getLogger("numba").setLevel(logging.WARNING)

from greenroom.keying.base import Keyer
from greenroom.keying.chroma import ChromaKeyer, detect_key_color
from greenroom.keying.frame import I420Frame
from greenroom.keying.params import ChromaParams, SegmentParams, format_color, parse_color

__all__ = [
    "ChromaKeyer",
    "ChromaParams",
    "I420Frame",
    "Keyer",
    "SegmentParams",
    "SegmentationKeyer",
    "detect_key_color",
    "format_color",
    "parse_color",
]


def __getattr__(name: str) -> type:  # the segmentation keyer loads the TFLite runtime lazily
    if name == "SegmentationKeyer":
        from greenroom.keying.segment import SegmentationKeyer

        return SegmentationKeyer
    raise AttributeError(name)
