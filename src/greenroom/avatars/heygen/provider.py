"""The ``heygen`` provider: HeyGen's legacy Streaming API, bridged from HeyGen's room into ours.

``streaming.new`` (``version: "v2"``) -> ``streaming.start``; HeyGen hosts the LiveKit room,
so a :class:`~greenroom.avatars._relay.Relay` joins it with the returned ``access_token`` and
republishes the avatar into our room, where the compositor keys it. ``speak`` is
``streaming.task`` (``repeat`` or ``talk``, async); the avatar's ``avatar_start_talking`` /
``avatar_stop_talking`` data messages drive the state. A 410 answer means HeyGen has shut the
Streaming API down: the error says to use the ``liveavatar`` provider. What every vendor
shares (validation, client ownership, rollback, closing) is in :mod:`greenroom.avatars._vendor`.
"""

from __future__ import annotations

import json
from typing import Any

from greenroom.avatars._vendor import StartArgs, VendorProviderBase, VendorSession
from greenroom.avatars.base import AvatarState, SpeakMode, VendorSessionRef, check_speech
from greenroom.avatars.heygen.api import VENDOR, HeyGenAPI
from greenroom.avatars.heygen.models import NewSession, NewSessionRequest, TaskRequest, Voice
from greenroom.errors import InvalidInput


class HeyGenSession(VendorSession):
    """A running HeyGen avatar, relayed into our room as ``identity``."""

    provider = VENDOR
    label = "HeyGen"
    api: HeyGenAPI

    def __init__(self, api: HeyGenAPI, new: NewSession, identity: str) -> None:
        super().__init__(api, identity, VendorSessionRef(VENDOR, new.session_id))
        self.room = new  # HeyGen's room: url and access token

    def _on_data(self, payload: bytes, _topic: str | None, _sender: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        self.events.append(event)
        kind = event.get("type")
        if kind == "avatar_start_talking":
            self._set_state(AvatarState.SPEAKING)
        elif kind == "avatar_stop_talking":
            self._set_state(AvatarState.IDLE)
        else:
            return
        self._mirror_state()

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        """Queue ``text`` as a ``streaming.task``. If HeyGen's answer is lost the task is not
        sent again (it could be spoken twice): ``vendor_outcome_unknown``."""
        text = check_speech(text, mode)
        self._check_open()
        await self.api.task(
            TaskRequest(session_id=self.session_id, text=text, task_type=mode, task_mode="async")
        )

    async def interrupt(self) -> None:
        self._check_open()
        await self.api.interrupt(self.session_id)


class HeyGenProvider(VendorProviderBase[HeyGenSession]):
    """Starts HeyGen sessions; option ``activity_idle_timeout`` (seconds, 30..3600)."""

    name = VENDOR
    label = "HeyGen"
    qualities = frozenset({"high", "medium", "low"})
    api_type = HeyGenAPI

    def _check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        idle = options.get("activity_idle_timeout")
        if idle is not None and (type(idle) is not int or not 30 <= idle <= 3600):
            raise InvalidInput(
                "activity_idle_timeout must be whole seconds from 30 to 3600",
                field="activity_idle_timeout",
            )
        return options

    async def _create(
        self,
        api: HeyGenAPI,
        args: StartArgs,
        *,
        activity_idle_timeout: int | None = None,
        **_options: Any,
    ) -> HeyGenSession:
        request = NewSessionRequest(
            avatar_id=args.avatar_id,
            quality=args.quality,  # type: ignore[arg-type]  # checked against qualities
            voice=Voice(voice_id=args.voice) if args.voice else None,
            version="v2",
            activity_idle_timeout=activity_idle_timeout,
        )
        return HeyGenSession(api, await api.new_session(request), args.identity)

    async def _begin(self, session: HeyGenSession, args: StartArgs, **_options: Any) -> None:
        await session.api.start(session.session_id)
        await session._relay_in(
            args.target,
            url=session.room.url,
            token=session.room.access_token,
            source=None,
            ready=args.ready_timeout,
        )
