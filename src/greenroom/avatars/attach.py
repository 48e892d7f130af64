"""The ``attach`` provider: composite an avatar participant that is already in the room.

For avatars Greenroom does not drive (Tavus with ``apply_greenscreen``, Anam, an agent's own
avatar plugin): ``avatar_id`` is the participant identity. Greenroom neither starts nor stops
that avatar, so ``speak``/``interrupt`` are refused with a clear error and ``aclose`` only
forgets it. ``start`` waits (``wait_s``) for the participant to be in the room.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from livekit import api

from greenroom.avatars.base import AvatarState, RoomTarget, SpeakMode, StateEmitter
from greenroom.errors import Conflict, InvalidInput, NotFound


class AttachProvider:
    name = "attach"

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str,
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        wait_s: float = 10.0,
        **_options: Any,
    ) -> AttachedAvatar:
        """Attach to the participant ``avatar_id`` (``identity`` is accepted as a synonym).

        Raises:
            InvalidInput: no identity given (field ``avatar_id``).
            NotFound: nobody with that identity joined ``target.room`` within ``wait_s``.
        """
        who = avatar_id or identity
        if not isinstance(who, str) or not who.strip():
            raise InvalidInput(
                "avatar_id must be the identity of the avatar participant to attach to",
                field="avatar_id",
            )
        if wait_s > 0:
            await _wait_for_participant(target, who, wait_s)
        session = AttachedAvatar(who)
        session._set_state(AvatarState.IDLE)
        return session


async def _wait_for_participant(target: RoomTarget, identity: str, wait_s: float) -> None:
    http_url = "http" + target.url[2:] if target.url.startswith("ws") else target.url
    deadline = time.monotonic() + wait_s
    async with api.LiveKitAPI(http_url, target.api_key, target.api_secret) as lk:
        while True:
            try:
                found = await lk.room.list_participants(
                    api.ListParticipantsRequest(room=target.room)
                )
                if any(p.identity == identity for p in found.participants):
                    return
            except api.TwirpError:
                pass  # the room does not exist yet
            if time.monotonic() >= deadline:
                raise NotFound(
                    f"no participant {identity!r} in room {target.room!r} after {wait_s:g} s; "
                    "the attach provider needs the avatar to be in the room already"
                )
            await asyncio.sleep(0.25)


class AttachedAvatar(StateEmitter):
    """An avatar someone else drives; Greenroom only composites it."""

    provider = "attach"

    def __init__(self, identity: str) -> None:
        super().__init__()
        self.identity = identity

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        raise Conflict(
            f"the attached avatar {self.identity!r} is driven by its own agent; "
            "Greenroom cannot make it speak"
        )

    async def interrupt(self) -> None:
        raise Conflict(f"the attached avatar {self.identity!r} is driven by its own agent")

    async def keep_alive(self) -> None:
        return None

    async def aclose(self) -> None:
        """Forget the avatar; it stays in the room (Greenroom did not start it)."""
        self._set_state(AvatarState.STOPPED)


from greenroom.avatars.base import register_provider  # noqa: E402

register_provider("attach", AttachProvider())
