"""The built-in avatar: a procedural presenter on a green screen with espeak-ng speech.

Registered as provider ``local``.
"""

from greenroom.avatars.base import register_provider
from greenroom.avatars.local.participant import LocalAvatar, LocalProvider
from greenroom.avatars.local.renderer import SCREEN_RGB, AvatarRenderer
from greenroom.avatars.local.tts import Speech, split_sentences, talk_reply

register_provider("local", LocalProvider())

__all__ = [
    "SCREEN_RGB",
    "AvatarRenderer",
    "LocalAvatar",
    "LocalProvider",
    "Speech",
    "split_sentences",
    "talk_reply",
]
