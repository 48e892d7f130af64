"""The ``heygen`` provider: HeyGen's legacy Streaming API, bridged from HeyGen's room into ours.

``streaming.new`` (``version: "v2"``) -> ``streaming.start``; HeyGen hosts the LiveKit room,
so a :class:`~greenroom.avatars._relay.Relay` joins it with the returned ``access_token`` and
republishes the avatar into our room, where the compositor keys it. ``speak`` is
``streaming.task`` (``repeat`` or ``talk``, async); the avatar's ``avatar_start_talking`` /
``avatar_stop_talking`` data messages drive the state. A 410 answer means HeyGen has shut the
Streaming API down: the error says to use the ``liveavatar`` provider.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx

from greenroom.avatars._http import (
    DEFAULT_RETRY,
    WRONG_STATE,
    RetryPolicy,
    stop_after_failure,
    vendor_credentials,
)
from greenroom.avatars._relay import Relay
from greenroom.avatars.base import AvatarState, RoomTarget, SpeakMode, StateEmitter, check_speech
from greenroom.avatars.heygen.api import VENDOR, HeyGenAPI
from greenroom.avatars.heygen.models import NewSessionRequest, TaskRequest, Voice
from greenroom.config import Settings
from greenroom.errors import InvalidInput, ProviderError

log = logging.getLogger(__name__)

QUALITIES = {"high", "medium", "low"}


class HeyGenProvider:
    name = "heygen"

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str,
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        activity_idle_timeout: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        settings: Settings | None = None,
        ready_timeout: float = 60.0,
        **_options: Any,
    ) -> HeyGenSession:
        """Start a HeyGen session and relay its avatar into ``target.room`` as ``identity``.

        Raises:
            InvalidInput: bad avatar id or quality (field named).
            ConfigError: no HeyGen API key configured.
            ProviderError: HeyGen refused or failed (vendor message and code kept).
        """
        if not isinstance(avatar_id, str) or not avatar_id.strip():
            raise InvalidInput("avatar_id is required for HeyGen", field="avatar_id")
        if quality not in QUALITIES:
            raise InvalidInput(
                f"quality must be one of {', '.join(sorted(QUALITIES))}", field="quality"
            )
        key, url = vendor_credentials("heygen", "HeyGen", api_key, base_url, settings)
        own_client = client is None
        http = client or httpx.AsyncClient()
        api = HeyGenAPI(url, key, http, retry=retry)
        request = NewSessionRequest(
            avatar_id=avatar_id,
            quality=quality,  # type: ignore[arg-type]
            voice=Voice(voice_id=voice) if voice else None,
            version="v2",
            activity_idle_timeout=activity_idle_timeout,
        )
        try:
            new = await api.new_session(request)
        except BaseException:
            if own_client:
                await http.aclose()
            raise
        session = HeyGenSession(api, new.session_id, identity or f"heygen-{uuid.uuid4().hex[:8]}")
        session._own_client = own_client
        try:
            await api.start(new.session_id)
            session.relay = await Relay.start(
                source_url=new.url,
                source_token=new.access_token,
                target=target,
                identity=session.identity,
                attributes={"greenroom.provider": "heygen"},
            )
            session.relay.on_data(session._on_data)
            session.relay.on_source_gone(session._on_gone)
            await session.relay.wait_ready(ready_timeout)
        except BaseException as exc:
            await session._release()
            if isinstance(exc, TimeoutError):
                exc = ProviderError(
                    VENDOR, f"the avatar published no video within {ready_timeout:g} s"
                )
            elif isinstance(exc, ConnectionError):
                exc = ProviderError(VENDOR, str(exc))
            await stop_after_failure(VENDOR, new.session_id, lambda: api.stop(new.session_id), exc)
        session._set_state(AvatarState.IDLE)
        return session


class HeyGenSession(StateEmitter):
    """A running HeyGen avatar, relayed into our room as ``identity``."""

    provider = "heygen"

    def __init__(self, api: HeyGenAPI, session_id: str, identity: str) -> None:
        super().__init__()
        self.api = api
        self.session_id = session_id
        self.identity = identity
        self.relay: Relay | None = None
        self.events: list[dict[str, Any]] = []
        self._own_client = False
        self._closed = False
        self.stop_reason: str | None = None

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
        if self.relay is not None:
            self.relay.spawn(self.relay.set_state(self.state.value))

    def _on_gone(self, why: str) -> None:
        if self._closed:  # our own stop made the avatar leave
            return
        log.warning("HeyGen session %s ended: %s", self.session_id, why)
        self.stop_reason = why
        self._set_state(AvatarState.STOPPED)

    def _check_open(self) -> None:
        if self._closed or self.state == AvatarState.STOPPED:
            raise ProviderError(VENDOR, "the HeyGen session has ended", code="session_ended")

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        text = check_speech(text, mode)
        self._check_open()
        await self.api.task(
            TaskRequest(session_id=self.session_id, text=text, task_type=mode, task_mode="async")
        )

    async def interrupt(self) -> None:
        self._check_open()
        await self.api.interrupt(self.session_id)

    async def keep_alive(self) -> None:
        self._check_open()
        await self.api.keep_alive(self.session_id)

    async def _release(self) -> None:
        if self.relay is not None:
            await self.relay.aclose()
        if self._own_client:
            await self.api.http.client.aclose()

    async def aclose(self) -> None:
        """Stop the HeyGen session and leave both rooms; idempotent.

        Raises:
            ProviderError: ``streaming.stop`` failed (the session may run until HeyGen's idle
                timeout); local resources are released regardless.
        """
        if self._closed:
            return
        self._closed = True
        error: ProviderError | None = None
        try:
            await self.api.stop(self.session_id)
        except ProviderError as exc:
            if getattr(exc, "vendor_code", None) != WRONG_STATE:  # already ended on HeyGen's side
                error = exc
        self._set_state(AvatarState.STOPPED)
        await self._release()
        if error is not None:
            raise error
