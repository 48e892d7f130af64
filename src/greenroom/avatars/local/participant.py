"""``LocalAvatar``: the built-in presenter as a LiveKit participant.

It joins a room as kind ``agent``, publishes one camera track (the renderer's I420 frames on
a steady clock) and one microphone track (48 kHz mono: espeak-ng speech, silence when idle),
and keeps its state in the participant attribute ``greenroom.avatar.state``.

Timing:
- video: a thread renders frame ``n`` for the absolute deadline ``t0 + n / fps`` and captures it
  with that monotonic time; if it falls behind it skips to the current frame (no bursts,
  no drift);
- audio: an event-loop task pushes 10 ms frames ``LEAD`` ahead of real time on absolute
  deadlines; the mouth shown at time ``t`` is the envelope of the audio that plays at ``t``.

Example::

    avatar = await LocalAvatar.start(target, identity="presenter")
    await avatar.say("Hello! I am the built-in avatar.")
    await avatar.wait_idle()
    await avatar.aclose()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

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
from greenroom.avatars.local.renderer import AvatarRenderer
from greenroom.avatars.local.tts import (
    SAMPLE_RATE,
    Speech,
    espeak_binary,
    mouth_envelope,
    split_sentences,
    talk_reply,
)
from greenroom.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)

FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms
LEAD = 0.06  # audio is pushed this far ahead of real time (absorbs event-loop jitter)
QUEUE_MS = 200  # AudioSource queue; never reached in normal pacing
SYNTH_AHEAD = 2  # sentence chunks synthesized ahead of the one playing
QUALITIES = {"high": (1280, 720), "medium": (960, 540), "low": (640, 360)}
VIDEO_TRACK = "avatar-camera"
AUDIO_TRACK = "avatar-microphone"
_SILENCE = np.zeros(FRAME_SAMPLES, np.int16)


@dataclass
class _Utterance:
    pcm: np.ndarray
    open: np.ndarray
    shape: np.ndarray
    last: bool = True  # the last chunk of its text
    pos: int = 0  # samples played


@dataclass
class VideoStats:
    frames: int = 0
    skipped: int = 0
    errors: int = 0
    render_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=300))


class LocalAvatar(StateEmitter):
    """The built-in avatar in a room. Create with :meth:`start`.

    Args:
        target: server, keys and room.
        identity: participant identity (default ``local-avatar-<6 hex>``).
        voice, rate: espeak-ng voice and words per minute.
        width, height, fps: video format (default 1280x720 at 30).
        avatar_id: any string; it seeds the hair and blink pattern.
    """

    provider = "local"

    def __init__(
        self,
        target: RoomTarget,
        *,
        identity: str | None = None,
        name: str | None = None,
        voice: str | None = None,
        rate: int | None = None,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        avatar_id: str = "default",
    ) -> None:
        super().__init__()
        if identity is not None and (not isinstance(identity, str) or not identity.strip()):
            raise InvalidInput("identity must be a non-empty string", field="identity")
        self.target = target
        self.identity = identity or f"local-avatar-{uuid.uuid4().hex[:6]}"
        self.name = name or "Greenroom avatar"
        self.avatar_id = avatar_id
        self.speech = Speech(voice, rate)
        self.renderer = AvatarRenderer(
            width, height, fps, seed=zlib.crc32(avatar_id.encode()) & 0xFFFF
        )
        self.fps = float(fps)
        self.room = rtc.Room()
        self.video_stats = VideoStats()
        self._texts: asyncio.Queue[str] = asyncio.Queue()
        self._ready: asyncio.Queue[_Utterance] = asyncio.Queue(maxsize=SYNTH_AHEAD)
        self._current: _Utterance | None = None
        self._pending = 0  # texts accepted and not yet fully played
        self._idle = asyncio.Event()
        self._idle.set()
        # (play_time, open, shape) per 10 ms of audio, read by the video thread
        self._mouth: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=400)
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._video_thread: threading.Thread | None = None
        self._closed = False
        self._t_start = 0.0

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def start(cls, target: RoomTarget, **kwargs: object) -> LocalAvatar:
        """Join ``target.room`` and start publishing; returns once both tracks are published."""
        self = cls(target, **kwargs)  # type: ignore[arg-type]
        await self._start()
        return self

    async def _start(self) -> None:
        espeak_binary()  # fail before joining if speech cannot work
        token = self.target.agent_token(
            self.identity,
            name=self.name,
            attributes={STATE_ATTRIBUTE: AvatarState.STARTING.value, "greenroom.role": "avatar"},
        )
        loop = asyncio.get_running_loop()
        # compile/warm the kernels off the loop before joining
        await asyncio.to_thread(self.renderer.render_i420, 0.0, 0.0, want_alpha=False)
        await self.room.connect(self.target.url, token, rtc.RoomOptions(auto_subscribe=False))
        try:
            r = self.renderer
            self._video_source = rtc.VideoSource(r.width, r.height)
            self._audio_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=QUEUE_MS, loop=loop)
            lp = self.room.local_participant
            await lp.publish_track(
                rtc.LocalVideoTrack.create_video_track(VIDEO_TRACK, self._video_source),
                rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA,
                    video_encoding=rtc.VideoEncoding(
                        max_bitrate=_bitrate(r.width, r.height), max_framerate=self.fps
                    ),
                ),
            )
            await lp.publish_track(
                rtc.LocalAudioTrack.create_audio_track(AUDIO_TRACK, self._audio_source),
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
            )
            self._t_start = time.monotonic()
            self._video_thread = threading.Thread(
                target=self._video_loop, name=f"avatar-video-{self.identity}", daemon=True
            )
            self._video_thread.start()
            self._tasks = [
                asyncio.create_task(self._audio_pump(), name="avatar-audio"),
                asyncio.create_task(self._synth_worker(), name="avatar-tts"),
            ]
            self._set_state(AvatarState.IDLE)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop rendering and speaking, leave the room. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._video_thread is not None:
            await asyncio.to_thread(self._video_thread.join, 2.0)
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        self._idle.set()
        self._set_state(AvatarState.STOPPED)

    async def __aenter__(self) -> LocalAvatar:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ speech API
    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        """Queue ``text`` (``mode="talk"``: a short reply built from it, see ``talk_reply``)."""
        text = check_speech(text, mode)
        if self._closed:
            raise Conflict("the avatar has stopped")
        if mode == "talk":
            text = talk_reply(text)
        self._pending += 1
        self._idle.clear()
        self._texts.put_nowait(text)

    say = speak

    async def interrupt(self) -> None:
        """Stop speaking at once and drop everything queued."""
        while not self._texts.empty():
            self._texts.get_nowait()
        while not self._ready.empty():
            self._ready.get_nowait()
        self._current = None
        self._pending = 0
        # restart synthesis so a chunk being synthesized now is dropped too
        if len(self._tasks) == 2:
            self._tasks[1].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tasks[1]
            if not self._closed:
                self._tasks[1] = asyncio.create_task(self._synth_worker(), name="avatar-tts")
        if not self._closed:
            self._audio_source.clear_queue()
        self._mouth.clear()
        self._went_idle()

    async def keep_alive(self) -> None:
        """Nothing to keep alive locally; kept for the provider interface."""

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until everything queued has been spoken (or interrupted)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # ------------------------------------------------------------------ state
    def _set_state(self, state: AvatarState) -> bool:
        changed = super()._set_state(state)
        if changed and self.room.isconnected() and state != AvatarState.STOPPED:
            task = asyncio.ensure_future(
                self.room.local_participant.set_attributes({STATE_ATTRIBUTE: state.value})
            )
            task.add_done_callback(_log_failure)
        return changed

    def _went_idle(self) -> None:
        self._idle.set()
        if not self._closed:
            self._set_state(AvatarState.IDLE)

    # ------------------------------------------------------------------ workers
    async def _synth_worker(self) -> None:
        """Turn queued texts into sentence chunks of audio, ``SYNTH_AHEAD`` ahead of playback."""
        while True:
            text = await self._texts.get()
            chunks = split_sentences(text)
            ended = False
            for i, chunk in enumerate(chunks):
                try:
                    pcm = await self.speech.synthesize(chunk)
                except Exception:
                    log.exception("speech synthesis failed; skipping %d characters", len(chunk))
                    continue
                env = mouth_envelope(pcm)
                ended = i == len(chunks) - 1
                await self._ready.put(_Utterance(pcm, env.open, env.shape, last=ended))
            if not ended:  # nothing (or not the end) reached playback: count the text as done
                self._text_done()

    def _text_done(self) -> None:
        self._pending = max(0, self._pending - 1)
        if self._pending == 0 and self._ready.empty():
            self._went_idle()

    def _next_audio(self, play_time: float) -> np.ndarray:
        """The next 10 ms of audio (speech or silence); records the mouth for ``play_time``."""
        u = self._current
        if u is None and not self._ready.empty():
            u = self._current = self._ready.get_nowait()
            self._set_state(AvatarState.SPEAKING)
        if u is None:
            return _SILENCE
        i = u.pos // FRAME_SAMPLES
        frame = u.pcm[u.pos : u.pos + FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:
            frame = np.concatenate([frame, _SILENCE[: FRAME_SAMPLES - len(frame)]])
        if i < len(u.open):
            self._mouth.append((play_time, float(u.open[i]), float(u.shape[i])))
        u.pos += FRAME_SAMPLES
        if u.pos >= len(u.pcm):
            self._current = None
            if u.last:
                self._text_done()
        return frame

    async def _audio_pump(self) -> None:
        """Push 10 ms frames on absolute deadlines, ``LEAD`` ahead of real time."""
        src = self._audio_source
        t0 = time.monotonic()
        k = 0
        while True:
            due = t0 + k * 0.01 - LEAD
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.25:  # the loop stalled: restart the clock instead of bursting
                t0 = time.monotonic() - k * 0.01 + LEAD
            play_time = time.monotonic() + src.queued_duration
            pcm = self._next_audio(play_time)
            await src.capture_frame(rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES))
            k += 1

    def _mouth_at(self, now: float, prev: tuple[float, float]) -> tuple[float, float]:
        """Mouth (open, shape) for audio playing at ``now``; eases shut when there is none."""
        m = self._mouth
        target_open, target_shape = 0.0, prev[1]
        latest = None
        with contextlib.suppress(IndexError):
            while len(m) > 1 and m[1][0] <= now:
                m.popleft()
            if m and m[0][0] <= now:
                latest = m[0]
        if latest is not None and now - latest[0] < 0.05:
            target_open, target_shape = latest[1], latest[2]
        o = prev[0] + 0.7 * (target_open - prev[0])
        return (0.0 if o < 0.01 else o), target_shape

    def _video_loop(self) -> None:
        """Render and capture frames on absolute deadlines (runs in its own thread)."""
        r, src, stats = self.renderer, self._video_source, self.video_stats
        period = 1.0 / self.fps
        bufs = [np.empty(r.width * r.height * 3 // 2, np.uint8) for _ in range(2)]
        t0 = time.monotonic()
        n = 0
        mouth = (0.0, 0.5)
        while not self._stop.is_set():
            deadline = t0 + n * period
            wait = deadline - time.monotonic()
            if wait > 0:
                if self._stop.wait(wait):
                    break
            elif wait < -period:  # late by more than a frame: skip to now, never burst
                late = math.floor(-wait / period)
                n += late
                stats.skipped += late
                deadline = t0 + n * period
            mouth = self._mouth_at(deadline, mouth)
            c0 = time.perf_counter()
            buf, _ = r.render_i420(
                deadline - self._t_start, mouth[0], mouth[1], want_alpha=False, out=bufs[n % 2]
            )
            stats.render_ms.append((time.perf_counter() - c0) * 1000)
            try:
                src.capture_frame(
                    rtc.VideoFrame(r.width, r.height, rtc.VideoBufferType.I420, memoryview(buf)),
                    timestamp_us=int(deadline * 1_000_000),
                )
            except Exception:
                if self._stop.is_set():
                    break
                stats.errors += 1
                if stats.errors == 1:
                    log.exception("capturing a video frame failed (later failures are counted)")
            stats.frames += 1
            n += 1


def _bitrate(width: int, height: int) -> int:
    """About 3 Mbit/s at 720p30: the picture must survive well enough to be keyed."""
    return int(3_000_000 * width * height / (1280 * 720))


def _log_failure(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("updating avatar attributes failed: %s", task.exception())


class LocalProvider:
    """Provider ``local``: starts a :class:`LocalAvatar`.

    ``quality`` picks the size (high 1280x720, medium 960x540, low 640x360); options
    ``width``, ``height``, ``fps``, ``rate`` (espeak-ng words per minute) override.
    """

    name = "local"

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str = "default",
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        **options: object,
    ) -> LocalAvatar:
        if quality not in QUALITIES:
            raise InvalidInput(f"quality must be one of {', '.join(QUALITIES)}", field="quality")
        unknown = set(options) - {"width", "height", "fps", "rate", "name"}
        if unknown:
            raise InvalidInput(
                f"unknown option(s) for the local avatar: {', '.join(sorted(unknown))}",
                field=sorted(unknown)[0],
            )
        w, h = QUALITIES[quality]
        return await LocalAvatar.start(
            target,
            identity=identity,
            voice=voice,
            avatar_id=avatar_id,
            width=int(options.get("width", w)),  # type: ignore[arg-type]
            height=int(options.get("height", h)),  # type: ignore[arg-type]
            fps=float(options.get("fps", 30.0)),  # type: ignore[arg-type]
            rate=options.get("rate"),  # type: ignore[arg-type]
            name=options.get("name"),  # type: ignore[arg-type]
        )
