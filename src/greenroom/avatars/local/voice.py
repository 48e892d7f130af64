"""The speech queue: texts in, 10 ms audio frames and mouth positions out, in real time.

``SpeechQueue.put`` queues a text (``push_audio``/``end_audio`` queue ready-made audio); a worker task splits it into sentence chunks and
synthesizes them ``SYNTH_AHEAD`` chunks ahead of playback. The audio pump calls
:meth:`SpeechQueue.next_frame` every 10 ms with the time that frame will play, so
:meth:`SpeechQueue.mouth_at` (called by the video thread) shows the mouth for the sound
heard at that moment. ``interrupt`` drops everything at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from greenroom.avatars.local.tts import SAMPLE_RATE, Speech, mouth_envelope, split_sentences

log = logging.getLogger(__name__)

FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms
SYNTH_AHEAD = 2  # sentence chunks synthesized ahead of the one playing
LEAD = 0.06  # audio is pushed this far ahead of real time (absorbs event-loop jitter)
SILENCE = np.zeros(FRAME_SAMPLES, np.int16)


@dataclass
class _Utterance:
    pcm: np.ndarray  # int16 48 kHz mono
    open: np.ndarray  # mouth opening per 10 ms
    shape: np.ndarray  # mouth shape per 10 ms
    last: bool = True  # the last chunk of its text
    pos: int = 0  # samples played


class SpeechQueue:
    """Queued speech for one avatar; all methods but :meth:`mouth_at` run on the event loop.

    Args:
        speech: the synthesizer.
        on_speaking, on_idle: called when playback starts, and when everything queued has
            played (or was interrupted).
    """

    def __init__(
        self, speech: Speech, on_speaking: Callable[[], None], on_idle: Callable[[], None]
    ) -> None:
        self.speech = speech
        self._on_speaking, self._on_idle = on_speaking, on_idle
        self._texts: asyncio.Queue[str] = asyncio.Queue()
        self._ready: asyncio.Queue[_Utterance] = asyncio.Queue(maxsize=SYNTH_AHEAD)
        self._current: _Utterance | None = None
        self._pending = 0  # texts accepted and not yet fully played
        self._idle = asyncio.Event()
        self._idle.set()
        # (play_time, open, shape) per 10 ms of speech, read by the video thread
        self._mouth: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=400)
        self._worker: asyncio.Task[None] | None = None
        self._streaming = False  # between push_audio() and end_audio()
        self._speaking = False  # on_speaking was called and on_idle not yet

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._synth_worker(), name="avatar-tts")

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
            self._worker = None
        self._idle.set()

    def put(self, text: str) -> None:
        """Queue an already validated text."""
        self._pending += 1
        self._idle.clear()
        self._texts.put_nowait(text)

    async def push_audio(self, pcm: np.ndarray) -> None:
        """Queue ready-made speech (48 kHz mono int16), e.g. audio streamed by a client.

        Pieces pushed until :meth:`end_audio` count as one utterance: the state stays
        ``speaking`` between them. Waits while ``SYNTH_AHEAD`` pieces are already queued.
        """
        if not self._streaming:
            self._streaming = True
            self._pending += 1
            self._idle.clear()
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        env = mouth_envelope(pcm)
        await self._ready.put(_Utterance(pcm, env.open, env.shape, last=False))

    async def end_audio(self) -> None:
        """Mark the end of the audio given to :meth:`push_audio`."""
        if self._streaming:
            self._streaming = False
            empty = np.zeros(0, np.int16)
            none = np.zeros(0, np.float32)
            await self._ready.put(_Utterance(empty, none, none, last=True))

    def drop(self) -> None:
        """Drop what is playing and everything queued, now (no await: nothing plays after)."""
        self._streaming = False
        while not self._texts.empty():
            self._texts.get_nowait()
        while not self._ready.empty():
            self._ready.get_nowait()
        self._current = None
        self._pending = 0
        self._mouth.clear()
        if not self._idle.is_set():
            self._went_idle()

    async def interrupt(self) -> None:
        """:meth:`drop`, then restart synthesis so a sentence being synthesized is lost too."""
        self.drop()
        if self._worker is not None:
            await self.aclose()
            self.drop()  # anything the old worker queued while it was being cancelled
            self.start()

    async def wait_idle(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout)

    def _went_idle(self) -> None:
        self._speaking = False
        self._idle.set()
        self._on_idle()

    def _text_done(self) -> None:
        self._pending = max(0, self._pending - 1)
        if self._pending == 0 and self._ready.empty() and self._current is None:
            self._went_idle()

    async def _synth_worker(self) -> None:
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
            if not ended:  # the end of this text never reaches playback: count it done here
                self._text_done()

    def next_frame(self, play_time: float) -> np.ndarray | None:
        """The next 10 ms of speech (int16), or None when there is none; notes the mouth."""
        u = self._current
        if u is None and not self._ready.empty():
            u = self._current = self._ready.get_nowait()
            if not self._speaking:
                self._speaking = True
                self._on_speaking()
        if u is None:
            return None
        i = u.pos // FRAME_SAMPLES
        frame = u.pcm[u.pos : u.pos + FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:
            frame = np.concatenate([frame, SILENCE[: FRAME_SAMPLES - len(frame)]])
        if i < len(u.open):
            self._mouth.append((play_time, float(u.open[i]), float(u.shape[i])))
        u.pos += FRAME_SAMPLES
        if u.pos >= len(u.pcm):
            self._current = None
            if u.last:
                self._text_done()
        return frame

    def mouth_at(self, now: float, prev: tuple[float, float]) -> tuple[float, float]:
        """Mouth (open, shape) for the sound playing at ``now``; eases shut when silent.

        Safe to call from another thread (deque operations are atomic).
        """
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


async def pump_audio(source: rtc.AudioSource, next_frame: Callable[[float], np.ndarray]) -> None:
    """Push 10 ms frames from ``next_frame(play_time)`` on absolute deadlines, LEAD ahead.

    If the event loop stalls for more than 250 ms the clock restarts instead of bursting.
    """
    t0 = time.monotonic()
    k = 0
    while True:
        due = t0 + k * 0.01 - LEAD
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.25:
            t0 = time.monotonic() - k * 0.01 + LEAD
        play_time = time.monotonic() + source.queued_duration
        pcm = next_frame(play_time)
        await source.capture_frame(rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES))
        k += 1
