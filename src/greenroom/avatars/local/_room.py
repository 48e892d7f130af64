"""What the built-in avatars share: join a room as an agent, publish camera + microphone,
speak through a :class:`SpeechQueue`, mirror the state in ``greenroom.avatar.state``.

A subclass provides the picture: ``width``, ``height``, ``fps`` and :meth:`_video_loop`
(run in a thread; it captures frames into ``self._video_source`` until ``self._stop``), and
may mix its own sound in :meth:`_audio_frame`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from typing import Any

import numpy as np
from livekit import rtc

from greenroom.avatars.base import (
    STATE_ATTRIBUTE,
    AvatarState,
    RoomTarget,
    SpeakMode,
    StateEmitter,
    check_speech,
)
from greenroom.avatars.local.tts import SAMPLE_RATE, Speech, espeak_binary, talk_reply
from greenroom.avatars.local.voice import SILENCE, SpeechQueue, pump_audio
from greenroom.errors import Conflict, GreenroomError, InvalidInput

log = logging.getLogger(__name__)

QUEUE_MS = 200  # AudioSource queue; normal pacing keeps about LEAD (60 ms) in it
VIDEO_TRACK = "avatar-camera"
AUDIO_TRACK = "avatar-microphone"


PUBLISH_ON_BEHALF = "lk.publish_on_behalf"


def bitrate(width: int, height: int, fps: float) -> int:
    """About 3 Mbit/s at 720p30 (at least 400 kbit/s): the picture must survive the encoder
    well enough to be keyed."""
    return max(400_000, int(3_000_000 * (width * height) / (1280 * 720) * max(fps, 10) / 30))


class RoomAvatar(StateEmitter):
    """Base of :class:`LocalAvatar` and :class:`FileAvatar`."""

    provider = "local"
    width: int
    height: int
    fps: float

    def __init__(
        self,
        target: RoomTarget,
        *,
        identity: str | None = None,
        name: str | None = None,
        voice: str | None = None,
        rate: int | None = None,
        composited_by: str | None = None,
    ) -> None:
        super().__init__()
        if identity is not None and (not isinstance(identity, str) or not identity.strip()):
            raise InvalidInput("identity must be a non-empty string", field="identity")
        if composited_by is not None and (
            not isinstance(composited_by, str) or not composited_by.strip()
        ):
            raise InvalidInput(
                "composited_by must be the compositing participant's identity",
                field="composited_by",
            )
        self.composited_by = composited_by
        self.target = target
        self.identity = identity or f"{self.provider}-avatar-{uuid.uuid4().hex[:6]}"
        self.name = name or "Greenroom avatar"
        self.room = rtc.Room()
        self.speech = SpeechQueue(Speech(voice, rate), self._speaking, self._idle)
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._video_thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def _prepare(self) -> None:
        """Checks and warm-up before joining (raise to refuse the start)."""
        # espeak-ng present (SetupError) and the voice known (InvalidInput, field "voice")
        await asyncio.to_thread(self.speech.speech.check)

    async def _start(self) -> None:
        await self._prepare()
        attributes = {
            STATE_ATTRIBUTE: AvatarState.STARTING.value,
            "greenroom.role": "avatar",
            "greenroom.provider": self.provider,
        }
        if self.composited_by:
            # LiveKit's agents frontends then never take this participant for the agent, nor
            # (unless the compositor is the agent itself) for the agent's avatar worker
            attributes[PUBLISH_ON_BEHALF] = self.composited_by
        token = self.target.agent_token(self.identity, name=self.name, attributes=attributes)
        loop = asyncio.get_running_loop()
        self.room.on("disconnected", self._on_disconnected)
        try:
            await self.room.connect(self.target.url, token, rtc.RoomOptions(auto_subscribe=False))
        except rtc.ConnectError as exc:
            raise GreenroomError(
                f"the avatar cannot join room {self.target.room!r} at {self.target.url}: {exc}",
                code="livekit_unavailable",
                status=503,
            ) from exc
        try:
            self._video_source = rtc.VideoSource(self.width, self.height)
            self._audio_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=QUEUE_MS, loop=loop)
            lp = self.room.local_participant
            if self.composited_by:
                # the raw green picture is for the compositor alone: set before publishing,
                # so no viewer can subscribe in between
                lp.set_track_subscription_permissions(
                    allow_all_participants=False,
                    participant_permissions=[
                        rtc.ParticipantTrackPermission(
                            participant_identity=self.composited_by, allow_all=True
                        )
                    ],
                )
            await lp.publish_track(
                rtc.LocalVideoTrack.create_video_track(VIDEO_TRACK, self._video_source),
                rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA,
                    # one full-size layer: the compositor keys it, and lower simulcast
                    # layers would cost two more encoders and reach it under congestion
                    simulcast=False,
                    # the SDK's IntEnum is the proto's value; its stub names only the proto type
                    degradation_preference=rtc.DegradationPreference.MAINTAIN_RESOLUTION,  # type: ignore[arg-type]
                    video_encoding=rtc.VideoEncoding(
                        max_bitrate=bitrate(self.width, self.height, self.fps),
                        max_framerate=self.fps,
                    ),
                ),
            )
            await lp.publish_track(
                rtc.LocalAudioTrack.create_audio_track(AUDIO_TRACK, self._audio_source),
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
            )
            self._video_thread = threading.Thread(
                target=self._video_loop, name=f"avatar-video-{self.identity}", daemon=True
            )
            self._video_thread.start()
            self.speech.start()
            self._tasks = [
                asyncio.create_task(
                    pump_audio(self._audio_source, self._audio_frame), name="avatar-audio"
                )
            ]
            self._set_state(AvatarState.IDLE)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the picture and the sound, leave the room. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        await self.speech.aclose()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._video_thread is not None:
            await asyncio.to_thread(self._video_thread.join, 2.0)
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        self._set_state(AvatarState.STOPPED)

    def _on_disconnected(self, reason: object = None) -> None:
        """The server dropped us (room deleted, server gone): end the session, not the process."""
        if not self._closed:
            log.warning("avatar %s left the room (%s); stopping", self.identity, reason)
            self._aclose_task = asyncio.ensure_future(self.aclose())

    async def __aenter__(self) -> RoomAvatar:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ speech API
    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        """Queue ``text``; ``mode="talk"`` speaks a short reply built from it (``talk_reply``).

        Raises:
            InvalidInput: empty text or unknown mode.
            Conflict: the avatar has stopped.
            SetupError: espeak-ng is not installed.
        """
        text = check_speech(text, mode)
        if self._closed:
            raise Conflict("the avatar has stopped")
        espeak_binary()  # SetupError naming the package, rather than a silent avatar
        self.speech.put(talk_reply(text) if mode == "talk" else text)

    say = speak

    async def interrupt(self) -> None:
        """Stop speaking at once and drop everything queued."""
        self.speech.drop()  # the next 10 ms frame is silence
        if not self._closed and self._tasks:
            self._audio_source.clear_queue()  # and what LiveKit still holds is gone
        await self.speech.interrupt()

    async def keep_alive(self) -> None:
        """Nothing times out locally; here for the provider interface."""

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until everything queued has been spoken (or interrupted)."""
        await self.speech.wait_idle(timeout)

    # ------------------------------------------------------------------ hooks
    def _audio_frame(self, play_time: float) -> np.ndarray:
        """The next 10 ms of the microphone track: speech, or silence."""
        frame = self.speech.next_frame(play_time)
        return SILENCE if frame is None else frame

    def _video_loop(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def _speaking(self) -> None:
        self._set_state(AvatarState.SPEAKING)

    def _idle(self) -> None:
        if not self._closed and self.state != AvatarState.STARTING:
            self._set_state(AvatarState.IDLE)

    def _set_state(self, state: AvatarState) -> bool:
        changed = super()._set_state(state)
        if changed and state != AvatarState.STOPPED and self.room.isconnected():
            task = asyncio.ensure_future(
                self.room.local_participant.set_attributes({STATE_ATTRIBUTE: state.value})
            )
            task.add_done_callback(_log_failure)
        return changed


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("updating the avatar's attributes failed: %s", task.exception())
