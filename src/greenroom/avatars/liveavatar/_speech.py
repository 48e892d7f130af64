"""Speech for LITE mode: text -> mono PCM16 at the rate LiveAvatar wants (24 kHz).

Uses the built-in avatar's text-to-speech when it provides one, else espeak-ng directly.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import wave

import numpy as np

from greenroom.errors import InvalidInput, SetupError


async def synthesize_pcm16(text: str, *, voice: str | None, sample_rate: int) -> bytes:
    """Little-endian int16 mono samples of ``text`` spoken at ``sample_rate`` Hz.

    Raises:
        SetupError: espeak-ng is not installed.
        InvalidInput: espeak-ng rejected the voice (field ``voice``).
    """
    samples, rate = await _espeak(text, voice)
    return _resample(samples, rate, sample_rate).tobytes()


async def _espeak(text: str, voice: str | None) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SetupError("espeak-ng is not installed (apt-get install espeak-ng)")
    args = [exe, "--stdout"]
    if voice:
        args += ["-v", voice]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(text.encode("utf-8"))
    if proc.returncode != 0 or not out:
        msg = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise InvalidInput(f"espeak-ng could not speak with voice {voice!r}: {msg}", field="voice")
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2"), rate


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or samples.size == 0:
        return samples.astype("<i2", copy=False)
    n = round(samples.size * target / rate)
    positions = np.arange(n, dtype=np.float64) * (rate / target)
    out = np.interp(positions, np.arange(samples.size), samples.astype(np.float32))
    return np.clip(np.rint(out), -32768, 32767).astype("<i2")
