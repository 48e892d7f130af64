"""The compositor: a LiveKit participant that puts a background behind one avatar.

See ``docs/compositor.md``. Public names::

    Compositor, CompositorOptions, CompositorClosed, REGISTRY (Prometheus),
    TRACK_NAME, AUDIO_TRACK_NAME, RPC_SET_BACKGROUND, ATTR_* and compositor_identity()
"""

from greenroom.compositor.compositor import Compositor, CompositorClosed
from greenroom.compositor.control import (
    RPC_FORBIDDEN,
    RPC_INTERNAL,
    RPC_INVALID_INPUT,
    RPC_RATE_LIMITED,
    parse_set_background,
)
from greenroom.compositor.options import (
    ATTR_AVATAR,
    ATTR_BACKGROUND,
    ATTR_KEY_COLOR,
    ATTR_KEYER,
    ATTR_ROLE,
    AUDIO_TRACK_NAME,
    ROLE_COMPOSITOR,
    RPC_SET_BACKGROUND,
    TRACK_NAME,
    CompositorOptions,
    RoomTargetLike,
    compositor_identity,
)
from greenroom.compositor.stats import REGISTRY

__all__ = [
    "ATTR_AVATAR",
    "ATTR_BACKGROUND",
    "ATTR_KEYER",
    "ATTR_KEY_COLOR",
    "ATTR_ROLE",
    "AUDIO_TRACK_NAME",
    "REGISTRY",
    "ROLE_COMPOSITOR",
    "RPC_FORBIDDEN",
    "RPC_INTERNAL",
    "RPC_INVALID_INPUT",
    "RPC_RATE_LIMITED",
    "RPC_SET_BACKGROUND",
    "TRACK_NAME",
    "Compositor",
    "CompositorClosed",
    "CompositorOptions",
    "RoomTargetLike",
    "compositor_identity",
    "parse_set_background",
]
