"""The ``liveavatar`` provider: LiveAvatar sessions in LITE mode (default) or FULL mode.

LITE: the avatar joins *our* room with a token we mint (``livekit_config``). Greenroom makes
the speech itself (espeak-ng) and streams it as PCM16 24 kHz over the session WebSocket
(``agent.speak`` ... ``agent.speak_end``); ``agent.interrupt`` stops it.

FULL: LiveAvatar hosts the room and speaks with its own voice. A :class:`~greenroom.avatars._relay.Relay`
brings the avatar into our room; text goes as ``avatar.speak_text`` (repeat) or
``avatar.speak_response`` (talk) on the LiveKit data topic ``agent-control``, and
``agent-response`` events drive the session state.

Both: session token -> start -> keep-alive -> stop (with a reason). What every vendor shares
(validation, client ownership, rollback, closing) is in :mod:`greenroom.avatars._vendor`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from greenroom.avatars._vendor import StartArgs, VendorProviderBase, VendorSession
from greenroom.avatars.base import (
    AvatarState,
    RoomTarget,
    SpeakMode,
    VendorSessionRef,
    check_speech,
)
from greenroom.avatars.liveavatar._speech import synthesize_pcm16
from greenroom.avatars.liveavatar.api import VENDOR, LiveAvatarAPI
from greenroom.avatars.liveavatar.models import (
    AvatarPersona,
    LiveKitConfig,
    SessionToken,
    StartedSession,
    TokenRequest,
    VideoSettings,
)
from greenroom.errors import InvalidInput, ProviderError

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
CHUNK_SECONDS = 1.0  # LiveAvatar asks for ~1 s chunks (<= 1 MB)
FULL_AVATAR_IDENTITY = "heygen"  # the avatar's identity in a LiveAvatar-hosted room
CONNECT_TIMEOUT = 30.0  # seconds for the LITE WebSocket to report "connected"
MODES = ("LITE", "FULL")


class _Session(VendorSession):
    provider = VENDOR
    label = "LiveAvatar"
    api: LiveAvatarAPI

    def __init__(self, api: LiveAvatarAPI, identity: str, token: SessionToken) -> None:
        ref = VendorSessionRef(VENDOR, token.session_id, stop_token=token.session_token)
        super().__init__(api, identity, ref)
        self.token = token

    async def _connect(self, started: StartedSession, args: StartArgs) -> None:
        raise NotImplementedError


class LiteSession(_Session):
    """A LITE session: our speech over the session WebSocket, the avatar in our room."""

    def __init__(
        self, api: LiveAvatarAPI, identity: str, token: SessionToken, voice: str | None
    ) -> None:
        super().__init__(api, identity, token)
        self.voice = voice
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._speak_lock = asyncio.Lock()

    async def _connect(self, started: StartedSession, args: StartArgs) -> None:
        if not started.ws_url:
            raise ProviderError(VENDOR, "start returned no ws_url for a LITE session")
        self._ws = await websockets.connect(started.ws_url, max_size=4 * 1024 * 1024)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)
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
            self._ended("closed_by_vendor")

    def _on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = event.get("type")
        if kind == "session.state_updated":
            state = event.get("state")
            if state == "connected":
                self._connected.set()
            elif state in ("closed", "closing", "disconnected", "stopped"):
                self._ended(event.get("reason") or str(state), by_vendor=True)
        elif kind == "agent.speak_started":
            self._set_state(AvatarState.SPEAKING)
        elif kind in ("agent.speak_ended", "agent.speak_interrupted"):
            self._set_state(AvatarState.IDLE)
        elif kind == "error":
            log.warning("LiveAvatar error event: %s", event.get("error", event))

    async def _send(self, event: dict[str, Any]) -> None:
        self._check_open()
        assert self._ws is not None
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
        if not self.ended and self._ws is not None:
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


class FullSession(_Session):
    """A FULL session: LiveAvatar's voice, relayed from its room into ours."""

    async def _connect(self, started: StartedSession, args: StartArgs) -> None:
        if not (started.livekit_url and started.livekit_client_token):
            raise ProviderError(VENDOR, "start returned no LiveKit room for a FULL session")
        await self._relay_in(
            args.target,
            url=started.livekit_url,
            token=started.livekit_client_token,
            source=FULL_AVATAR_IDENTITY,
            ready=args.ready_timeout,
        )

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
            self._ended(event.get("reason") or "stopped_by_vendor", by_vendor=True)
        if kind in ("avatar.speak_started", "avatar.speak_ended"):
            self._mirror_state()

    async def _command(self, event_type: str, **fields: Any) -> None:
        self._check_open()
        assert self.relay is not None
        payload = {"event_id": str(uuid.uuid4()), "event_type": event_type, **fields}
        await self.relay.send_data(json.dumps(payload).encode(), topic="agent-control")

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        text = check_speech(text, mode)
        kind = "avatar.speak_text" if mode == "repeat" else "avatar.speak_response"
        await self._command(kind, text=text)

    async def interrupt(self) -> None:
        if self.state != AvatarState.STOPPED:
            await self._command("avatar.interrupt")


class LiveAvatarProvider(VendorProviderBase[_Session]):
    """Starts LiveAvatar sessions. Options: ``mode`` (``LITE``/``FULL``), ``sandbox``,
    ``max_session_duration`` (s), and for FULL ``language`` and ``context_id``."""

    name = VENDOR
    label = "LiveAvatar"
    qualities = frozenset({"very_high", "high", "medium", "low"})
    api_type = LiveAvatarAPI

    def _check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        mode = str(options.get("mode", "LITE")).upper()
        if mode not in MODES:
            raise InvalidInput("mode must be LITE or FULL", field="mode")
        return {**options, "mode": mode}

    async def _create(
        self,
        api: LiveAvatarAPI,
        args: StartArgs,
        *,
        mode: str = "LITE",
        sandbox: bool = False,
        max_session_duration: int | None = None,
        language: str | None = None,
        context_id: str | None = None,
        **_options: Any,
    ) -> _Session:
        common: dict[str, Any] = dict(
            avatar_id=args.avatar_id,
            is_sandbox=sandbox,
            video_settings=VideoSettings(quality=args.quality),  # type: ignore[arg-type]  # checked
            max_session_duration=max_session_duration,
        )
        if mode == "LITE":
            target: RoomTarget = args.target
            token = args.target.agent_token(
                args.identity, attributes={"greenroom.provider": VENDOR}
            )
            room = LiveKitConfig(
                livekit_url=target.url, livekit_room=target.room, livekit_client_token=token
            )
            req = TokenRequest(mode="LITE", livekit_config=room, **common)
            return LiteSession(api, args.identity, await api.create_token(req), args.voice)
        persona = AvatarPersona(voice_id=args.voice, context_id=context_id, language=language)
        req = TokenRequest(mode="FULL", avatar_persona=persona, **common)
        return FullSession(api, args.identity, await api.create_token(req))

    async def _begin(self, session: _Session, args: StartArgs, **_options: Any) -> None:
        await session._connect(await session.api.start(session.token), args)
