"""The built-in avatar: a procedural presenter on a green screen with espeak-ng speech."""

from greenroom.avatars.local.renderer import AvatarRenderer

__all__ = ["AvatarRenderer"]
