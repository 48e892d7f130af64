"""Greenroom: server-side background replacement for real-time AI avatars in LiveKit rooms.

Folders, one concern each, data flowing one way (provider -> compositor -> room):

- ``keying``: pure frame maths (keyers, despill, compositing, metrics).
- ``backgrounds``: background sources (colour, image, video loop, blur).
- ``avatars``: avatar providers (built-in local avatar, file, vendors, attach).
- ``compositor``: the LiveKit participant that keys and republishes.
- ``agents``: a background behind a LiveKit Agents avatar in one call
  (``await greenroom.agents.add_background(ctx.room, avatar=..., background=...)``).
- ``emulators``: offline stand-ins for the vendors' HTTP APIs.
- ``api`` and ``store``: the HTTP service and its database.
- ``web``: the viewer page.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["BackgroundHandle", "__version__", "add_background", "agents"]

# Loaded on first use: ``import greenroom`` (the CLI, say) stays free of LiveKit and numba.
_LAZY = {"agents": None, "add_background": "add_background", "BackgroundHandle": "BackgroundHandle"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'greenroom' has no attribute {name!r}")
    module = importlib.import_module("greenroom.agents")
    attr = _LAZY[name]
    return module if attr is None else getattr(module, attr)
