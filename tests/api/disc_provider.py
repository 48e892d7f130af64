"""A test avatar provider over the compositor's synthetic green-screen disc.

It is a real LiveKit participant publishing a 720p camera track (the compositor's own test
source, with known alpha), wrapped in the :class:`~greenroom.avatars.AvatarSession`
interface so the API can run sessions before, or without, the built-in local avatar.
It records what it is asked to say instead of speaking.
"""

from __future__ import annotations

from typing import Any

from greenroom.avatars import AvatarState, RoomTarget, StateEmitter, check_speech, register_provider
from greenroom.compositor.synthetic import DiscScene, SyntheticAvatar


class DiscSession(StateEmitter):
    provider = "disc"

    def __init__(self, avatar: SyntheticAvatar, identity: str):
        super().__init__()
        self.avatar = avatar
        self.identity = identity
        self.spoken: list[tuple[str, str]] = []
        self.interrupts = 0
        self.keep_alives = 0

    async def speak(self, text: str, *, mode: str = "repeat") -> None:
        self.spoken.append((check_speech(text, mode), mode))

    async def interrupt(self) -> None:
        self.interrupts += 1

    async def keep_alive(self) -> None:
        self.keep_alives += 1

    async def aclose(self) -> None:
        if self.state != AvatarState.STOPPED:
            await self.avatar.aclose()
            self._set_state(AvatarState.STOPPED)


class DiscProvider:
    name = "disc"

    def __init__(self) -> None:
        self.sessions: list[DiscSession] = []

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str,
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        **options: Any,
    ) -> DiscSession:
        identity = identity or "disc"
        avatar = SyntheticAvatar(scene=DiscScene(motion=False), flash=False)
        await avatar.start(target.url, target.api_key, target.api_secret, target.room, identity)
        session = DiscSession(avatar, identity)
        session._set_state(AvatarState.IDLE)
        self.sessions.append(session)
        return session


def register() -> DiscProvider:
    provider = DiscProvider()
    register_provider("disc", provider)
    return provider
