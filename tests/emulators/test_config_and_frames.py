"""Emulator configuration (error injection from the environment) and the HeyGen SDK's
protobuf chat frames."""

from __future__ import annotations

import pytest

from greenroom.emulators.config import EmulatorConfig
from greenroom.emulators.heygen import _pipecat_text

pytestmark = pytest.mark.unit


def test_from_env_reads_injection_settings() -> None:
    cfg = EmulatorConfig.from_env(
        env={
            "GREENROOM_EMULATOR_FAIL_NEXT": "2:503:10001",
            "GREENROOM_EMULATOR_UNKNOWN_AVATARS": "ghost, nobody",
            "GREENROOM_EMULATOR_MAX_CONCURRENT": "1",
            "GREENROOM_EMULATOR_SUNSET": "yes",
            "GREENROOM_EMULATOR_API_KEY": "k",
        }
    )
    assert cfg.unknown_avatars == {"ghost", "nobody"} and not cfg.avatar_exists("ghost")
    assert cfg.avatar_exists("anna") and cfg.max_concurrent == 1 and cfg.sunset
    assert cfg.key_ok("k") and not cfg.key_ok("other") and not cfg.key_ok("")
    first = cfg.take_fault("/v1/streaming.new")
    assert first is not None and (first.status, first.code) == (503, 10001)
    assert cfg.take_fault("/x") is not None and cfg.take_fault("/x") is None  # two, then none


def test_from_env_names_a_bad_fail_next() -> None:
    with pytest.raises(ValueError, match="GREENROOM_EMULATOR_FAIL_NEXT must be N:STATUS"):
        EmulatorConfig.from_env(env={"GREENROOM_EMULATOR_FAIL_NEXT": "often"})


def test_faults_can_target_one_path() -> None:
    cfg = EmulatorConfig()
    cfg.fail_next(1, 500, path="/v1/sessions/start")
    assert cfg.take_fault("/v1/sessions/token") is None
    assert cfg.take_fault("/v1/sessions/start") is not None
    assert cfg.faults == []


def _ld(field: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([field << 3 | 2, len(payload)]) + payload


def test_pipecat_text_frame_is_decoded() -> None:
    text_frame = bytes([1 << 3 | 0, 7]) + _ld(2, b"TextFrame") + _ld(3, "héllo".encode())
    assert _pipecat_text(_ld(1, text_frame)) == "héllo"


def test_other_or_broken_frames_are_ignored() -> None:
    audio_frame = _ld(3, b"\x00\x01") + bytes([4 << 3, 0x80, 0x7D])  # audio + sampleRate 16000
    assert _pipecat_text(_ld(2, audio_frame)) is None
    assert _pipecat_text(b"\x0a\x50garbage") is None
    assert _pipecat_text(b"") is None
