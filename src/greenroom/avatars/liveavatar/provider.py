"""The ``liveavatar`` provider: LiveAvatar sessions in LITE mode (default) or FULL mode.

LITE: the avatar joins *our* room with a token we mint (``livekit_config``). Greenroom makes
the speech itself (espeak-ng) and streams it as PCM16 24 kHz over the session WebSocket
(``agent.speak`` ... ``agent.speak_end``); ``agent.interrupt`` stops it.

FULL: LiveAvatar hosts the room and speaks with its own voice. A :class:`~greenroom.avatars._relay.Relay`
brings the avatar into our room; text goes as ``avatar.speak_text`` (repeat) or
``avatar.speak_response`` (talk) on the LiveKit data topic ``agent-control``, and
``agent-response`` events drive the session state.

Both: session token -> start -> keep-alive -> stop (with a reason); the vendor session is
stopped if anything on our side fails after it began.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from typing import Any, Literal

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from greenroom.avatars._http import (
    DEFAULT_RETRY,
    WRONG_STATE,
    RetryPolicy,
    stop_after_failure,
    vendor_credentials,
)
from greenroom.avatars._relay import Relay
from greenroom.avatars.base import (
    AvatarState,
    RoomTarget,
    SpeakMode,
    StateEmitter,
    check_speech,
)
from greenroom.avatars.liveavatar._speech import synthesize_pcm16
from greenroom.avatars.liveavatar.api import VENDOR, LiveAvatarAPI
from greenroom.avatars.liveavatar.models import (
    AvatarPersona,
    LiveKitConfig,
    SessionToken,
    StartedSession,
    StopReason,
    TokenRequest,
    VideoSettings,
)
from greenroom.config import Settings
from greenroom.errors import InvalidInput, ProviderError

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
CHUNK_SECONDS = 1.0  # LiveAvatar asks for ~1 s chunks (<= 1 MB)
FULL_AVATAR_IDENTITY = "heygen"  # the avatar's identity in a LiveAvatar-hosted room
QUALITIES = {"very_high", "high", "medium", "low"}


class LiveAvatarProvider:
    """Starts LiveAvatar sessions; the API key and URL come from Settings unless given."""

    name = "liveavatar"

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str,
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        mode: Literal["LITE", "FULL"] = "LITE",
        sandbox: bool = False,
        max_session_duration: int | None = None,
        language: str | None = None,
        context_id: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        settings: Settings | None = None,
        **_options: Any,
    ) -> LiteSession | FullSession:
        """Start a session whose avatar ends up in ``target.room`` as ``identity``.

        Raises:
            InvalidInput: bad avatar id, mode or quality (field named).
            ConfigError: no LiveAvatar API key configured.
            ProviderError: LiveAvatar refused or failed (vendor message kept).
        """
        mode = str(mode).upper()  # type: ignore[assignment]
        if mode not in ("LITE", "FULL"):
            raise InvalidInput("mode must be LITE or FULL", field="mode")
        if not isinstance(avatar_id, str) or not avatar_id.strip():
            raise InvalidInput("avatar_id is required for LiveAvatar", field="avatar_id")
        if quality not in QUALITIES:
            raise InvalidInput(
                f"quality must be one of {', '.join(sorted(QUALITIES))}", field="quality"
            )
        key, url = vendor_credentials("liveavatar", "LiveAvatar", api_key, base_url, settings)
        own_client = client is None
        http = client or httpx.AsyncClient()
        api = LiveAvatarAPI(url, key, http, retry=retry)
        identity = identity or f"liveavatar-{uuid.uuid4().hex[:8]}"
        video = VideoSettings(quality=quality)  # type: ignore[arg-type]
        if mode == "LITE":
            req = TokenRequest(
                mode="LITE",
                avatar_id=avatar_id,
                is_sandbox=sandbox,
                video_settings=video,
                max_session_duration=max_session_duration,
                livekit_config=LiveKitConfig(
                    livekit_url=target.url,
                    livekit_room=target.room,
                    livekit_client_token=target.agent_token(
                        identity, attributes={"greenroom.provider": "liveavatar"}
                    ),
                ),
            )
            session: LiteSession | FullSession = LiteSession(api, identity, voice, own_client)
        else:
            req = TokenRequest(
                mode="FULL",
                avatar_id=avatar_id,
                is_sandbox=sandbox,
                video_settings=video,
                max_session_duration=max_session_duration,
                avatar_persona=AvatarPersona(
                    voice_id=voice, context_id=context_id, language=language
                ),
            )
            session = FullSession(api, identity, own_client)
        try:
            token = await api.create_token(req)
        except BaseException:
            if own_client:
                await http.aclose()
            raise
        session.token = token
        try:
            started = await api.start(token)
            await session._connect(started, target)
        except BaseException as exc:
            await session._release()
            await stop_after_failure(
                VENDOR, token.session_id, lambda: api.stop(token, StopReason.SERVER_ERROR), exc
            )
        session._set_state(AvatarState.IDLE)
        return session


class _Base(StateEmitter):
    provider = "liveavatar"

    def __init__(self, api: LiveAvatarAPI, identity: str, own_client: bool) -> None:
        super().__init__()
        self.api = api
        self.identity = identity
        self.token: SessionToken | None = None
        self._own_client = own_client
        self._closed = False
        self.stop_reason: str | None = None

    @property
    def session_id(self) -> str | None:
        return self.token.session_id if self.token else None

    async def _connect(self, started: StartedSession, target: RoomTarget) -> None:
        raise NotImplementedError

    async def _release(self) -> None:
        """Drop local resources (sockets, rooms, HTTP client); no vendor call."""
        if self._own_client:
            await self.api.http.client.aclose()

    async def keep_alive(self) -> None:
        if self._closed or self.token is None:
            return
        await self.api.keep_alive(self.token)

    async def aclose(self, reason: StopReason = StopReason.USER_CLOSED) -> None:
        """Stop the vendor session and release everything; idempotent.

        Raises:
            ProviderError: stopping the vendor session failed (it may keep running until its
                idle timeout); local resources are released regardless.
        """
        if self._closed:
            return
        self._closed = True
        error: ProviderError | None = None
        if self.token is not None and self.stop_reason is None:
            try:
                await self.api.stop(self.token, reason)
            except ProviderError as exc:
                if getattr(exc, "vendor_code", None) != WRONG_STATE and exc.http_status != 404:
                    error = exc
        self.stop_reason = self.stop_reason or reason.value
        self._set_state(AvatarState.STOPPED)
        await self._release()
        if error is not None:
            raise error


class LiteSession(_Base):
    """A LITE session: our speech over the session WebSocket, the avatar in our room."""

    def __init__(
        self, api: LiveAvatarAPI, identity: str, voice: str | None, own_client: bool
    ) -> None:
        super().__init__(api, identity, own_client)
        self.voice = voice
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._connected = asyncio.Event()
        self._speak_lock = asyncio.Lock()
        self.events: list[dict[str, Any]] = []

    async def _connect(self, started: StartedSession, target: RoomTarget) -> None:
        if not started.ws_url:
            raise ProviderError(VENDOR, "start returned no ws_url for a LITE session")
        self._ws = await websockets.connect(started.ws_url, max_size=4 * 1024 * 1024)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            await asyncio.wait_for(self._connected.wait(), 30)
        except TimeoutError:
            raise ProviderError(
                VENDOR, "the session WebSocket never reported state 'connected'", retryable=True
            ) from None

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                self._on_event(event)
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self._closed:
                log.warning("LiveAvatar session %s ended by the vendor", self.session_id)
                self.stop_reason = self.stop_reason or "closed_by_vendor"
                self._set_state(AvatarState.STOPPED)

    def _on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = event.get("type")
        if kind == "session.state_updated":
            state = event.get("state")
            if state == "connected":
                self._connected.set()
            elif state in ("closed", "closing", "disconnected", "stopped"):
                self.stop_reason = event.get("reason") or str(state)
                self._set_state(AvatarState.STOPPED)
        elif kind == "agent.speak_started":
            self._set_state(AvatarState.SPEAKING)
        elif kind in ("agent.speak_ended", "agent.speak_interrupted"):
            self._set_state(AvatarState.IDLE)
        elif kind == "error":
            log.warning("LiveAvatar error event: %s", event.get("error", event))

    async def _send(self, event: dict[str, Any]) -> None:
        if self._ws is None or self._closed or self.state == AvatarState.STOPPED:
            raise ProviderError(VENDOR, "the LiveAvatar session has ended", code="session_ended")
        await self._ws.send(json.dumps({"event_id": str(uuid.uuid4()), **event}))

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        """Synthesize ``text`` with espeak-ng and stream it; ``talk`` is spoken as given too
        (LITE has no LLM of its own: the words are ours)."""
        text = check_speech(text, mode)
        pcm = await synthesize_pcm16(text, voice=self.voice, sample_rate=SAMPLE_RATE)
        chunk = int(SAMPLE_RATE * CHUNK_SECONDS) * 2
        async with self._speak_lock:
            for i in range(0, len(pcm), chunk):
                piece = base64.b64encode(pcm[i : i + chunk]).decode("ascii")
                await self._send({"type": "agent.speak", "audio": piece})
            await self._send({"type": "agent.speak_end"})

    async def interrupt(self) -> None:
        if self.state != AvatarState.STOPPED:
            await self._send({"type": "agent.interrupt"})

    async def keep_alive(self) -> None:
        if self.state != AvatarState.STOPPED and self._ws is not None:
            with contextlib.suppress(ProviderError, websockets.ConnectionClosed):
                await self._send({"type": "session.keep_alive"})
        await super().keep_alive()

    async def _release(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await super()._release()


class FullSession(_Base):
    """A FULL session: LiveAvatar's voice, relayed from its room into ours."""

    def __init__(self, api: LiveAvatarAPI, identity: str, own_client: bool) -> None:
        super().__init__(api, identity, own_client)
        self.relay: Relay | None = None
        self.events: list[dict[str, Any]] = []

    async def _connect(self, started: StartedSession, target: RoomTarget) -> None:
        if not (started.livekit_url and started.livekit_client_token):
            raise ProviderError(VENDOR, "start returned no LiveKit room for a FULL session")
        self.relay = await Relay.start(
            source_url=started.livekit_url,
            source_token=started.livekit_client_token,
            target=target,
            identity=self.identity,
            source_identity=FULL_AVATAR_IDENTITY,
            attributes={"greenroom.provider": "liveavatar"},
        )
        self.relay.on_data(self._on_data)
        self.relay.on_source_gone(self._on_gone)
        try:
            await self.relay.wait_ready(30)
        except (TimeoutError, ConnectionError) as exc:
            raise ProviderError(VENDOR, str(exc)) from None

    def _on_gone(self, why: str) -> None:
        if not self._closed and self.state != AvatarState.STOPPED:
            log.warning("LiveAvatar session %s ended: %s", self.session_id, why)
            self.stop_reason = self.stop_reason or why
            self._set_state(AvatarState.STOPPED)

    def _on_data(self, payload: bytes, topic: str | None, _sender: str) -> None:
        if topic != "agent-response":
            return
        try:
            event = json.loads(payload)
        except ValueError:
            return
        self.events.append(event)
        kind = event.get("event_type")
        if kind == "avatar.speak_started":
            self._set_state(AvatarState.SPEAKING)
        elif kind == "avatar.speak_ended":
            self._set_state(AvatarState.IDLE)
        elif kind == "session.stopped":
            self.stop_reason = event.get("reason") or "stopped_by_vendor"
            self._set_state(AvatarState.STOPPED)
        if self.relay is not None and kind in ("avatar.speak_started", "avatar.speak_ended"):
            self.relay.spawn(self.relay.set_state(self.state.value))

    async def _command(self, event_type: str, **fields: Any) -> None:
        if self.relay is None or self._closed or self.state == AvatarState.STOPPED:
            raise ProviderError(VENDOR, "the LiveAvatar session has ended", code="session_ended")
        payload = {"event_id": str(uuid.uuid4()), "event_type": event_type, **fields}
        await self.relay.send_data(json.dumps(payload).encode(), topic="agent-control")

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        text = check_speech(text, mode)
        kind = "avatar.speak_text" if mode == "repeat" else "avatar.speak_response"
        await self._command(kind, text=text)

    async def interrupt(self) -> None:
        if self.state != AvatarState.STOPPED:
            await self._command("avatar.interrupt")

    async def _release(self) -> None:
        if self.relay is not None:
            await self.relay.aclose()
        await super()._release()
