"""Speech for the built-in avatar: espeak-ng, chunking, mouth envelope, bad input."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from greenroom.avatars import RoomTarget, get_provider
from greenroom.avatars.local import LocalAvatar, Speech, split_sentences, talk_reply
from greenroom.avatars.local.tts import espeak_binary, mouth_envelope
from greenroom.errors import InvalidInput, SetupError

pytestmark = pytest.mark.unit

# nothing listens here: these tests never get as far as joining a room
NOWHERE = RoomTarget("ws://127.0.0.1:9", "devkey", "secret", "nowhere")


async def test_espeak_speaks_48khz_mono_int16() -> None:
    pcm = await Speech("en-us", 175).synthesize("Hello there, this is Greenroom.")
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert 0.8 < len(pcm) / 48_000 < 4.0
    rms = np.sqrt(np.mean(pcm.astype(np.float64) ** 2))
    assert rms > 1000
    # espeak-ng renders at 22.05 kHz: nothing meaningful above 11 kHz after resampling
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48_000)
    assert spectrum[freqs > 12_000].sum() < 0.01 * spectrum.sum()


def test_mouth_follows_loudness() -> None:
    silence = np.zeros(48_000, np.int16)
    assert mouth_envelope(silence).open.max() == 0.0
    t = np.arange(48_000) / 48_000
    burst = (np.sin(2 * np.pi * 200 * t) * 12_000 * (t > 0.5)).astype(np.int16)
    env = mouth_envelope(burst)
    assert len(env.open) == 100  # one value per 10 ms
    assert env.open[:45].max() == 0.0 and env.open[60:].min() > 0.5


def test_long_text_is_chunked_by_sentence_not_refused() -> None:
    sentence = "The avatar reads sentence number {} aloud, clearly and calmly. "
    text = "".join(sentence.format(i) for i in range(200))[:10_000]
    assert len(text) == 10_000
    chunks = split_sentences(text)
    assert len(chunks) > 20
    assert chunks[0] == "The avatar reads sentence number 0 aloud, clearly and calmly."
    assert all(len(c) <= 400 for c in chunks)
    assert " ".join(chunks) == re.sub(r"\s+", " ", text).strip()  # nothing lost
    # one enormous "sentence" is cut at spaces
    words = split_sentences("word " * 2000)
    assert all(len(c) <= 400 for c in words) and " ".join(words).split() == ["word"] * 2000


async def test_speak_accepts_10000_characters_and_rejects_empty_text() -> None:
    avatar = LocalAvatar(NOWHERE, width=320, height=180)
    await avatar.speak("Sentence. " * 1000)  # queued, spoken chunk by chunk once started
    assert avatar.speech.busy
    for bad in ("", "   \n\t"):
        with pytest.raises(InvalidInput) as e:
            await avatar.speak(bad)
        assert e.value.field == "text" and "empty" in e.value.message
    with pytest.raises(InvalidInput) as e:
        await avatar.speak("hello", mode="sing")  # type: ignore[arg-type]
    assert e.value.field == "mode"


def test_talk_mode_answers_deterministically() -> None:
    q = talk_reply("What is the weather like in Paris today?")
    assert q == talk_reply("What is the weather like in Paris today?")
    assert q.startswith("Good question about weather.")
    s = talk_reply("The quick brown fox jumps over the lazy dog twice")
    assert s.startswith("You said: The quick brown fox jumps over the lazy and so on.")
    assert "10 words" in s


async def test_missing_espeak_is_a_setup_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    with pytest.raises(SetupError) as e:
        espeak_binary()
    assert "apt-get install espeak-ng" in e.value.message
    with pytest.raises(SetupError):
        await Speech().synthesize("hello")
    with pytest.raises(SetupError, match="espeak-ng"):  # refused before joining any room
        await get_provider("local").start(NOWHERE, quality="low")
    avatar = LocalAvatar(NOWHERE, width=320, height=180)
    with pytest.raises(SetupError):
        await avatar.speak("hello")


def test_unknown_voice_names_the_field() -> None:
    with pytest.raises(InvalidInput) as e:
        Speech("zz-nosuch").check()
    assert e.value.field == "voice"


async def test_unknown_voice_refuses_the_start() -> None:
    with pytest.raises(InvalidInput) as e:
        await get_provider("local").start(NOWHERE, voice="zz-nosuch", quality="low")
    assert e.value.field == "voice"
    with pytest.raises(InvalidInput) as e:
        Speech("en; rm -rf /")
    assert e.value.field == "voice"
    with pytest.raises(InvalidInput) as e:
        Speech(rate=5)
    assert e.value.field == "rate"


async def test_ready_made_audio_plays_as_one_utterance() -> None:
    from greenroom.avatars.local.voice import FRAME_SAMPLES, SpeechQueue

    events: list[str] = []
    q = SpeechQueue(Speech(), lambda: events.append("speaking"), lambda: events.append("idle"))
    tone = (np.sin(np.arange(4800) / 8) * 10_000).astype(np.int16)  # 100 ms

    async def client() -> None:  # a streaming client; push_audio waits while 2 are queued
        await q.push_audio(tone)
        await q.push_audio(tone)
        await q.end_audio()

    feeding = asyncio.create_task(client())
    await asyncio.sleep(0)
    assert q.busy
    frames = []
    for i in range(25):
        frames.append(q.next_frame(float(i)))
        await asyncio.sleep(0)
    await feeding
    played = np.concatenate([f for f in frames if f is not None])
    assert np.array_equal(played[: 2 * len(tone)], np.concatenate([tone, tone]))
    assert len(played) == 21 * FRAME_SAMPLES  # 20 frames of tone, one closing frame
    assert events == ["speaking", "idle"] and not q.busy
    assert q.mouth_at(5.0, (0.0, 0.5))[0] > 0  # the mouth moved with the tone


async def test_several_texts_queue_and_play_in_order() -> None:
    from greenroom.avatars.local.voice import FRAME_SAMPLES, SpeechQueue

    speech = Speech("en-us")
    one, two = await speech.synthesize("One."), await speech.synthesize("Two, three.")
    events: list[str] = []
    q = SpeechQueue(speech, lambda: events.append("speaking"), lambda: events.append("idle"))
    q.start()
    try:
        q.put("One.")
        q.put("Two, three.")
        played: list[np.ndarray] = []
        for i in range(5000):  # pull 10 ms frames as fast as synthesis allows
            frame = q.next_frame(i * 0.01)
            if frame is not None:
                played.append(frame)
            elif not q.busy:
                break
            await asyncio.sleep(0.002)
        audio = np.concatenate(played)
        n1, n2 = -(-len(one) // FRAME_SAMPLES), -(-len(two) // FRAME_SAMPLES)
        assert len(audio) == (n1 + n2) * FRAME_SAMPLES  # both, whole, nothing else
        assert np.array_equal(audio[: len(one)], one)
        assert np.array_equal(audio[n1 * FRAME_SAMPLES :][: len(two)], two)
        assert events == ["speaking", "idle"]
    finally:
        await q.aclose()
