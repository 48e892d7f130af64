"""Backgrounds: what goes behind the avatar, and the per-session ``Scene`` pipeline.

The upload library (``greenroom.backgrounds.library``) is separate and imported on its own.
"""

from greenroom.backgrounds.scene import Scene, make_keyer
from greenroom.backgrounds.sources import BackgroundSource, open_background
from greenroom.backgrounds.spec import BackgroundSpec

__all__ = ["BackgroundSource", "BackgroundSpec", "Scene", "make_keyer", "open_background"]
