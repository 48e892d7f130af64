"""Speech for LITE mode: text -> mono PCM16 at the rate LiveAvatar wants (24 kHz).

The words come from the built-in avatar's espeak-ng text-to-speech
(:class:`greenroom.avatars.local.tts.Speech`, 48 kHz); 24 kHz is every second sample, which
is alias-free here because espeak-ng's output holds nothing above 11 kHz.
"""

from __future__ import annotations

import numpy as np

from greenroom.avatars.local.tts import SAMPLE_RATE as TTS_RATE
from greenroom.avatars.local.tts import Speech, split_sentences


async def synthesize_pcm16(text: str, *, voice: str | None, sample_rate: int) -> bytes:
    """Little-endian int16 mono samples of ``text`` spoken at ``sample_rate`` Hz.

    Raises:
        SetupError: espeak-ng is not installed.
        InvalidInput: unknown voice (field ``voice``).
    """
    if TTS_RATE % sample_rate:
        raise ValueError(f"sample_rate must divide {TTS_RATE}")
    speech = Speech(voice)
    parts = [await speech.synthesize(chunk) for chunk in split_sentences(text)]
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return pcm[:: TTS_RATE // sample_rate].astype("<i2").tobytes()
