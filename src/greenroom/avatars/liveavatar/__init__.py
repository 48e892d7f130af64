"""LiveAvatar (HeyGen's real-time avatar API): REST client, wire models and the provider.

Importing this package registers the ``liveavatar`` provider.
"""

from greenroom.avatars.base import register_provider
from greenroom.avatars.liveavatar.api import LiveAvatarAPI
from greenroom.avatars.liveavatar.provider import FullSession, LiteSession, LiveAvatarProvider

register_provider("liveavatar", LiveAvatarProvider())

__all__ = ["FullSession", "LiteSession", "LiveAvatarAPI", "LiveAvatarProvider"]
