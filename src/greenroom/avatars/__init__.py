"""Avatar providers: participants that publish an avatar's raw video and audio into a room.

See :mod:`greenroom.avatars.base` for the interface. Built-in: ``local`` (a procedural
presenter with espeak-ng speech) and ``file`` (loops a green-screen clip).
"""

from greenroom.avatars.base import (
    MAX_TEXT_CHARS,
    PROVIDERS,
    STATE_ATTRIBUTE,
    AvatarSession,
    AvatarState,
    Provider,
    RoomTarget,
    SpeakMode,
    StateEmitter,
    VendorProvider,
    VendorSessionCallback,
    VendorSessionRef,
    check_speech,
    get_provider,
    provider_names,
    register_provider,
    stop_vendor_session,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "PROVIDERS",
    "STATE_ATTRIBUTE",
    "AvatarSession",
    "AvatarState",
    "Provider",
    "RoomTarget",
    "SpeakMode",
    "StateEmitter",
    "VendorProvider",
    "VendorSessionCallback",
    "VendorSessionRef",
    "check_speech",
    "get_provider",
    "provider_names",
    "register_provider",
    "stop_vendor_session",
]
