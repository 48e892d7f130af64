"""Speech for the built-in avatar: espeak-ng synthesis, sentence chunking, mouth envelopes.

espeak-ng (the Debian package ``espeak-ng``) writes 22.05 kHz mono WAV to stdout; PyAV's
resampler brings it to 48 kHz mono int16, the rate LiveKit audio runs at. Text goes in on
stdin, so it is never parsed as options.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass

import av
import numpy as np

from greenroom.errors import InvalidInput, SetupError

SAMPLE_RATE = 48_000
CHUNK_CHARS = 240  # sentences are merged up to this many characters per synthesis call
_HARD_CHARS = 400  # a sentence longer than this is split at commas, then spaces
ESPEAK_PACKAGE = "espeak-ng"
SYNTH_TIMEOUT = 60.0  # s for espeak-ng to speak one chunk


def espeak_binary() -> str:
    """Path of ``espeak-ng``; SetupError naming the Debian package when it is not installed."""
    path = shutil.which("espeak-ng", path=os.environ.get("PATH", ""))
    if path is None:
        raise SetupError(
            "espeak-ng is not installed (the built-in avatar speaks with it): "
            f"run `sudo apt-get install {ESPEAK_PACKAGE}` (Debian/Ubuntu package "
            f"'{ESPEAK_PACKAGE}') or `greenroom setup`"
        )
    return path


def split_sentences(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Split ``text`` into chunks of whole sentences, each at most about ``max_chars`` long.

    The first chunk is one sentence, so speech starts quickly; later ones merge sentences.
    """
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    sentences = [s for s in re.split(r"(?<=[.!?;:])\s+", text) if s]
    pieces: list[str] = []
    for s in sentences:
        while len(s) > _HARD_CHARS:
            cut = s.rfind(", ", 0, _HARD_CHARS)
            if cut < _HARD_CHARS // 3:
                cut = s.rfind(" ", 0, _HARD_CHARS)
            if cut < _HARD_CHARS // 3:
                cut = _HARD_CHARS
            pieces.append(s[: cut + 1].strip())
            s = s[cut + 1 :].strip()
        if s:
            pieces.append(s)
    chunks: list[str] = [pieces[0]]
    cur = ""
    for p in pieces[1:]:
        if cur and len(cur) + 1 + len(p) > max_chars:
            chunks.append(cur)
            cur = p
        else:
            cur = f"{cur} {p}" if cur else p
    if cur:
        chunks.append(cur)
    return chunks


def talk_reply(text: str) -> str:
    """The local avatar's answer in ``talk`` mode (it has no language model).

    Deterministic: a question gets "Good question about <topic>. ...", anything else gets
    "You said: <first eight words>. ..."; <topic> is the longest word of the text.
    """
    words = re.findall(r"[\w'’-]+", text)
    if not words:
        return "I did not catch that."
    topic = max(words, key=len)
    n = len(words)
    if text.rstrip().endswith("?"):
        return (
            f"Good question about {topic}. I am the built-in avatar, so I cannot look that up, "
            f"but I heard all {n} words."
        )
    head = " ".join(words[:8]) + (" and so on" if n > 8 else "")
    return f"You said: {head}. That is {n} words, and the longest is {topic}."


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng's streamed WAV (sizes left at 0x7fffffff) -> int16 samples and their rate."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SetupError("espeak-ng did not produce WAV audio")
    pos, rate, bits, channels = 12, 22050, 16, 1
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if tag == b"fmt ":
            channels, rate = struct.unpack_from("<HI", data, pos + 10)
            bits = struct.unpack_from("<H", data, pos + 22)[0]
        elif tag == b"data":
            body = data[pos + 8 :]
            break
        pos += 8 + size
    else:
        raise SetupError("espeak-ng WAV output has no data")
    if bits != 16:
        raise SetupError(f"espeak-ng wrote {bits}-bit audio; 16-bit expected")
    pcm = np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")
    if channels > 1:
        pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels)[:, 0]
    return pcm.astype(np.int16), rate


def resample_to_48k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Mono int16 at ``rate`` -> mono int16 at 48 kHz (PyAV/libswresample)."""
    if rate == SAMPLE_RATE or len(pcm) == 0:
        return pcm.astype(np.int16, copy=False)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)


@dataclass(frozen=True)
class MouthTrack:
    """Mouth opening (0..1) and shape (0 round .. 1 wide) per 10 ms of audio."""

    open: np.ndarray  # float32 (n,)
    shape: np.ndarray  # float32 (n,)


def mouth_envelope(pcm: np.ndarray, step: int = SAMPLE_RATE // 100) -> MouthTrack:
    """Drive the mouth from audio: RMS per 10 ms (in dB, fast attack, slower release) sets the
    opening; the zero-crossing rate (hiss, "ee" sounds) sets the width."""
    n = len(pcm) // step
    if n == 0:
        return MouthTrack(np.zeros(0, np.float32), np.zeros(0, np.float32))
    x = pcm[: n * step].astype(np.float32).reshape(n, step) / 32768.0
    rms = np.sqrt(np.mean(x * x, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    target = np.clip((db + 42.0) / 30.0, 0.0, 1.0)  # -42 dBFS closed .. -12 dBFS wide open
    zc = np.mean(np.abs(np.diff(np.signbit(x), axis=1)), axis=1)
    shape_t = np.clip((zc - 0.02) / 0.12, 0.0, 1.0)
    opening = np.empty(n, np.float32)
    shape = np.empty(n, np.float32)
    o, s = 0.0, 0.5
    for i in range(n):
        k = 0.6 if target[i] > o else 0.25
        o += k * (target[i] - o)
        s += 0.3 * (shape_t[i] - s)
        opening[i], shape[i] = o, s
    return MouthTrack(opening, shape)


class Speech:
    """espeak-ng text-to-speech at 48 kHz mono int16.

    Args:
        voice: espeak-ng voice (``espeak-ng --voices``), e.g. ``en-us`` or ``en+f3``.
        rate: words per minute (80..450).

    Example::

        pcm = await Speech("en-us").synthesize("Hello.")   # np.int16, 48 kHz
    """

    def __init__(self, voice: str | None = None, rate: int | None = None) -> None:
        if voice is not None and not re.fullmatch(r"[A-Za-z0-9_+\-/.]{1,64}", voice):
            raise InvalidInput(f"voice {voice!r} is not an espeak-ng voice name", field="voice")
        if rate is not None and not (isinstance(rate, int) and 80 <= rate <= 450):
            raise InvalidInput("rate must be 80..450 words per minute", field="rate")
        self.voice = voice
        self.rate = rate

    def _argv(self) -> list[str]:
        argv = [espeak_binary(), "--stdin", "--stdout"]
        if self.voice:
            argv += ["-v", self.voice]
        if self.rate:
            argv += ["-s", str(self.rate)]
        return argv

    def check(self) -> None:
        """Raise SetupError if espeak-ng is missing, InvalidInput if the voice is unknown."""
        argv = self._argv()
        proc = subprocess.run(argv, input=b"a", capture_output=True, timeout=30, check=False)
        self._raise_for(proc.returncode, proc.stderr)

    def _raise_for(self, rc: int, stderr: bytes) -> None:
        if rc == 0:
            return
        msg = stderr.decode(errors="replace").strip()
        if "voice" in msg.lower():
            raise InvalidInput(f"espeak-ng has no voice {self.voice!r}", field="voice")
        raise SetupError(f"espeak-ng failed (exit {rc}): {msg[:200]}")

    async def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text`` into 48 kHz mono int16 samples.

        espeak-ng runs through ``subprocess`` on a worker thread, not the event loop's own
        subprocess support: uvloop forks and then runs Python's after-fork code in the
        child, which waits for ever when another thread (LiveKit's, calling back into
        Python) held the interpreter's thread lock at that moment; the service then hung
        in the spawn. ``subprocess`` starts the child without running Python in it.
        """
        try:
            proc = await asyncio.to_thread(
                subprocess.run,
                self._argv(),
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=SYNTH_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SetupError(f"espeak-ng did not finish within {SYNTH_TIMEOUT:g} s") from exc
        out, err = proc.stdout, proc.stderr
        self._raise_for(proc.returncode, err)
        pcm, rate = _parse_wav(out)
        return await asyncio.to_thread(resample_to_48k, pcm, rate)
