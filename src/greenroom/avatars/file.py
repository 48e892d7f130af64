"""Provider ``file``: loop a green-screen video file into a room, with its sound.

Any clip PyAV can decode works (MP4, WebM, MOV...); it plays at its own size (scaled down to
fit 1920x1080 if larger, rounded to even) and frame rate, looping forever. ``speak`` still works: espeak-ng speech is mixed into the clip's sound (the
clip's mouth does not follow it, of course).

Example::

    avatar = await FileAvatar.start(target, "presenter.mp4", identity="clip")
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from livekit import rtc

from greenroom.avatars.base import RoomTarget, register_provider
from greenroom.avatars.local._room import RoomAvatar
from greenroom.avatars.local.tts import SAMPLE_RATE
from greenroom.avatars.local.voice import FRAME_SAMPLES
from greenroom.errors import InvalidInput

log = logging.getLogger(__name__)

START_DELAY = 0.2  # seconds of decoding ahead before the first frame is shown
MAX_SIZE = (1920, 1080)  # larger clips are published scaled down to fit
_IMAGE_FORMATS = {"image2", "image2pipe", "gif", "apng", "webp_pipe"}


def probe_clip(path: str | Path) -> tuple[int, int, float, bool]:
    """(width, height, fps, has_audio) of a video file.

    Raises:
        InvalidInput: (field ``clip``) missing, unreadable, not a video, or no decodable frame.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"clip {str(path)!r} does not exist or is not a file", field="clip")
    try:
        with av.open(str(p)) as c:
            fmt = c.format.name
            if not c.streams.video:
                raise InvalidInput(f"clip {p.name!r} has no video stream", field="clip")
            if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
                raise InvalidInput(
                    f"clip {p.name!r} is a still image ({fmt}), not a video", field="clip"
                )
            vs = c.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate or Fraction(30)
            first = next(c.decode(vs), None)
            if first is None:
                raise InvalidInput(f"clip {p.name!r} has no decodable video frame", field="clip")
            w, h = first.width, first.height
            if w < 16 or h < 16:
                raise InvalidInput(f"clip {p.name!r} is too small ({w}x{h})", field="clip")
            scale = min(1.0, MAX_SIZE[0] / w, MAX_SIZE[1] / h)  # larger clips are scaled down
            w, h = int(w * scale) & ~1, int(h * scale) & ~1
            fps = float(rate)
            if not 1 <= fps <= 120:
                fps = 30.0
            return w, h, fps, bool(c.streams.audio)
    except InvalidInput:
        raise
    except (av.FFmpegError, StopIteration, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"clip {p.name!r} is not a video file that can be decoded: {exc}", field="clip"
        ) from exc


class _AudioTimeline:
    """Decoded clip sound addressed by absolute sample index since playback start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[tuple[int, np.ndarray]] = []

    def add(self, start: int, pcm: np.ndarray) -> None:
        with self._lock:
            self._chunks.append((start, pcm))

    def read(self, start: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        with self._lock:
            while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= start:
                self._chunks.pop(0)
            for s, pcm in self._chunks:
                if s >= start + n:
                    break
                a, b = max(start, s), min(start + n, s + len(pcm))
                if b > a:
                    out[a - start : b - start] = pcm[a - s : b - s]
        return out


class FileAvatar(RoomAvatar):
    """A looping clip in a room. Create it with :meth:`start`."""

    provider = "file"

    def __init__(
        self,
        target: RoomTarget,
        clip: str | Path,
        *,
        identity: str | None = None,
        name: str | None = None,
        voice: str | None = None,
        rate: int | None = None,
    ) -> None:
        self.clip = Path(clip)
        self.width, self.height, self.fps, self.has_audio = probe_clip(clip)
        super().__init__(target, identity=identity, name=name, voice=voice, rate=rate)
        self.frames_published = 0
        self.frames_late = 0  # decoded too late to show on time, dropped
        self.loops = 0
        self._audio = _AudioTimeline()
        self._t0 = time.monotonic() + 3600.0  # set when the video thread starts
        self._frames: queue.Queue[tuple[float, np.ndarray] | None] = queue.Queue(
            maxsize=max(4, int(self.fps))
        )

    @classmethod
    async def start(cls, target: RoomTarget, clip: str | Path, **kwargs: Any) -> FileAvatar:
        """Join ``target.room`` and start looping ``clip``.

        Raises:
            InvalidInput: the clip is missing or not a video (field ``clip``).
        """
        self = cls(target, clip, **kwargs)
        await self._start()
        return self

    async def _prepare(self) -> None:
        """Nothing to check: the clip was probed, and espeak-ng is only needed to speak."""

    # -------------------------------------------------------------- decoding
    def _decode_loop(self) -> None:
        """Decode the clip forever into the frame queue and the audio timeline."""
        w, h = self.width, self.height
        offset = 0.0  # timeline seconds at the start of this pass
        while not self._stop.is_set():
            last_t = offset
            n_audio = 0
            try:
                with av.open(str(self.clip)) as c:
                    vs = c.streams.video[0]
                    streams = [vs] + ([c.streams.audio[0]] if c.streams.audio else [])
                    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
                    t_first: float | None = None
                    for packet in c.demux(streams):
                        if self._stop.is_set():
                            return
                        for frame in packet.decode():
                            if isinstance(frame, av.VideoFrame):
                                t = float(frame.time or 0.0)
                                if t_first is None:
                                    t_first = t
                                ts = offset + (t - t_first)
                                img = frame.reformat(w, h, format="yuv420p").to_ndarray()
                                last_t = ts
                                while not self._stop.is_set():
                                    try:
                                        self._frames.put((ts, img), timeout=0.2)
                                        break
                                    except queue.Full:
                                        continue
                            elif isinstance(frame, av.AudioFrame):
                                for rf in resampler.resample(frame):
                                    pcm = rf.to_ndarray().reshape(-1).astype(np.int16)
                                    start = round(offset * SAMPLE_RATE) + n_audio
                                    self._audio.add(start, pcm)
                                    n_audio += len(pcm)
            except av.FFmpegError:
                log.exception("decoding %s failed; retrying in 1 s", self.clip.name)
                if self._stop.wait(1.0):
                    return
            offset = last_t + 1.0 / self.fps
            self.loops += 1

    def _video_loop(self) -> None:
        """Show each decoded frame at its time on the clip's own clock."""
        threading.Thread(target=self._decode_loop, name="avatar-file-decode", daemon=True).start()
        src, period = self._video_source, 1.0 / self.fps
        self._t0 = time.monotonic() + START_DELAY
        while not self._stop.is_set():
            try:
                item = self._frames.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                break
            ts, img = item
            deadline = self._t0 + ts
            wait = deadline - time.monotonic()
            if wait < -period:  # late: drop this frame rather than burst
                self.frames_late += 1
                continue
            if wait > 0 and self._stop.wait(wait):
                break
            try:
                src.capture_frame(
                    rtc.VideoFrame(self.width, self.height, rtc.VideoBufferType.I420, img.data),
                    timestamp_us=int(deadline * 1_000_000),
                )
                self.frames_published += 1
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("capturing a clip frame failed")

    def _audio_frame(self, play_time: float) -> np.ndarray:
        start = math.floor((play_time - self._t0) * SAMPLE_RATE)
        clip = self._audio.read(start, FRAME_SAMPLES) if start >= 0 else None
        speech = self.speech.next_frame(play_time)
        if speech is None:
            return clip if clip is not None else np.zeros(FRAME_SAMPLES, np.int16)
        if clip is None:
            return speech
        mixed: np.ndarray = np.clip(clip.astype(np.int32) + speech, -32768, 32767)
        return mixed.astype(np.int16)


class FileProvider:
    """Provider ``file``: ``avatar_id`` (or option ``clip``) is the path of the video file."""

    name = "file"

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str = "",
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        settings: Any = None,  # a local clip needs no credentials
        **options: Any,
    ) -> FileAvatar:
        clip = options.pop("clip", None) or avatar_id
        if not clip:
            raise InvalidInput("the file provider needs the clip's path", field="clip")
        unknown = sorted(set(options) - {"rate", "name"})
        if unknown:
            raise InvalidInput(
                f"unknown option(s) for the file avatar: {', '.join(unknown)}", field=unknown[0]
            )
        return await FileAvatar.start(
            target,
            clip,
            identity=identity,
            voice=voice,
            rate=options.get("rate"),
            name=options.get("name"),
        )


register_provider("file", FileProvider())
