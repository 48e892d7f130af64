"""The emulators' avatar: Greenroom's built-in :class:`~greenroom.avatars.local.LocalAvatar`.

An emulator gets a LiveKit URL and a *token* (LiveAvatar LITE: the one the customer minted;
HeyGen / LiveAvatar FULL: one the emulator mints for its own room), so the avatar joins
through :class:`_TokenTarget`, which hands LocalAvatar that token instead of minting one.

Speech arrives either as text (HeyGen tasks, FULL-mode commands) or as PCM16 pushed over the
LITE WebSocket; both become utterances in LocalAvatar's speech queue, so lip movement follows
the audio either way (``SpeechQueue.push_audio`` / ``end_audio`` for ready-made audio).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import numpy as np
from livekit import rtc

from greenroom.avatars.base import AvatarState
from greenroom.avatars.local.participant import LocalAvatar
from greenroom.avatars.local.tts import SAMPLE_RATE, split_sentences
from greenroom.emulators._sessions import DataCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _TokenTarget:
    """Quacks like ``RoomTarget`` for LocalAvatar, with a ready-made token."""

    url: str
    token: str = field(repr=False)
    room: str = ""

    def agent_token(self, identity: str, **_: Any) -> str:
        return self.token


def token_identity(token: str) -> tuple[str, str]:
    """(identity, room) named by a LiveKit JWT; the signature is LiveKit's to check."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ValueError(f"livekit_client_token is not a LiveKit token: {exc}") from None
    return str(claims.get("sub") or ""), str((claims.get("video") or {}).get("room") or "")


class LocalBackend:
    """Starts one LocalAvatar per emulated session."""

    async def join(
        self, *, url: str, token: str, avatar_id: str, voice: str | None, identity: str
    ) -> EmulatedLocalAvatar:
        sub, room = token_identity(token)
        avatar = await LocalAvatar.start(
            _TokenTarget(url, token, room),  # type: ignore[arg-type]
            identity=sub or identity or None,
            voice=voice if voice and _espeak_voice(voice) else None,
            avatar_id=avatar_id,
        )
        return EmulatedLocalAvatar(avatar)


def _espeak_voice(voice: str) -> bool:
    # vendor voice ids (uuids, "Anna_public") are not espeak-ng voices: use the default then
    return len(voice) <= 12 and all(c.isalnum() or c in "+-_" for c in voice) and "-" in voice


class EmulatedLocalAvatar:
    """The :class:`~greenroom.emulators._sessions.EmulatedAvatar` surface over a LocalAvatar."""

    def __init__(self, avatar: LocalAvatar) -> None:
        self.avatar = avatar
        self.identity = avatar.identity
        # PCM pieces, and None at the end of an utterance; fed to the avatar in order
        self._pcm: collections.deque[np.ndarray | None] = collections.deque()
        self._wake = asyncio.Event()
        self._open_utterance = False
        self._feeder = asyncio.get_running_loop().create_task(self._feed())
        self._data_callbacks: list[DataCallback] = []

        @avatar.room.on("data_received")
        def _on_data(packet: rtc.DataPacket) -> None:
            sender = packet.participant.identity if packet.participant else ""
            for cb in list(self._data_callbacks):
                try:
                    cb(bytes(packet.data), packet.topic or None, sender)
                except Exception:
                    log.exception("emulator data callback failed")

    # --- speech from text ---------------------------------------------------------------
    async def say(self, text: str) -> float:
        """Synthesize now (so the duration is known), then queue for playback."""
        seconds = 0.0
        for chunk in split_sentences(text):
            pcm = await self.avatar.speech.speech.synthesize(chunk)
            seconds += len(pcm) / SAMPLE_RATE
            self._enqueue(pcm)
        self._finish()
        return seconds

    # --- speech from PCM (LITE) -----------------------------------------------------------
    async def push_pcm(self, pcm: bytes, sample_rate: int) -> None:
        samples = np.frombuffer(pcm, dtype="<i2")
        if sample_rate != SAMPLE_RATE:
            n = round(len(samples) * SAMPLE_RATE / sample_rate)
            x = np.arange(n) * (sample_rate / SAMPLE_RATE)
            samples = np.interp(x, np.arange(len(samples)), samples).astype(np.int16)
        self._enqueue(samples.astype(np.int16))

    async def end_pcm(self) -> None:
        self._finish()

    def _enqueue(self, pcm: np.ndarray) -> None:
        self._open_utterance = True
        self._pcm.append(pcm)
        self._wake.set()

    def _finish(self) -> None:
        if self._open_utterance:
            self._open_utterance = False
            self._pcm.append(None)
            self._wake.set()

    async def _feed(self) -> None:
        """Hand queued speech to LocalAvatar's bounded playback queue (it paces it)."""
        speech = self.avatar.speech
        while True:
            while not self._pcm:
                self._wake.clear()
                await self._wake.wait()
            pcm = self._pcm.popleft()
            await (speech.end_audio() if pcm is None else speech.push_audio(pcm))

    async def interrupt(self) -> None:
        self._pcm.clear()
        self._open_utterance = False
        await self.avatar.interrupt()

    def is_speaking(self) -> bool:
        return self.avatar.state == AvatarState.SPEAKING or bool(self._pcm)

    # --- data and state -------------------------------------------------------------------
    async def publish_data(self, payload: bytes, topic: str | None = None) -> None:
        await self.avatar.room.local_participant.publish_data(
            payload, reliable=True, topic=topic or ""
        )

    def on_data(self, callback: DataCallback) -> None:
        self._data_callbacks.append(callback)

    def on_speaking(self, callback: Callable[[bool], None]) -> None:
        def on_state(state: AvatarState) -> None:
            if state == AvatarState.SPEAKING:
                callback(True)
            elif state == AvatarState.IDLE:
                callback(False)

        self.avatar.on_state(on_state)

    async def aclose(self) -> None:
        self._feeder.cancel()
        with contextlib.suppress(BaseException):
            await self._feeder
        await self.avatar.aclose()
