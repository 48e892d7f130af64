"""HeyGen's legacy Streaming API (``/v1/streaming.*``): client, wire models and the provider.

Importing this package registers the ``heygen`` provider.
"""

from greenroom.avatars.base import register_provider
from greenroom.avatars.heygen.api import HeyGenAPI
from greenroom.avatars.heygen.provider import HeyGenProvider, HeyGenSession

register_provider("heygen", HeyGenProvider())

__all__ = ["HeyGenAPI", "HeyGenProvider", "HeyGenSession"]
