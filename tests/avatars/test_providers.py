"""The provider registry and interface, and the file provider's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from greenroom.avatars import (
    AvatarSession,
    AvatarState,
    RoomTarget,
    StateEmitter,
    check_speech,
    get_provider,
)
from greenroom.avatars.file import FileAvatar, probe_clip
from greenroom.avatars.local import LocalAvatar
from greenroom.cli import app
from greenroom.errors import GreenroomError, InvalidInput, NotFound

pytestmark = pytest.mark.unit

NOWHERE = RoomTarget("ws://127.0.0.1:9", "devkey", "secret", "nowhere")


def test_builtin_providers_are_registered() -> None:
    assert get_provider("local").name == "local"
    assert get_provider("file").name == "file"
    with pytest.raises(NotFound, match=r"unknown avatar provider 'nope'.*local"):
        get_provider("nope")
    with pytest.raises(InvalidInput) as e:
        get_provider("")
    assert e.value.field == "provider"


async def test_local_and_file_avatars_follow_the_session_protocol(green_clip: Path) -> None:
    # async: a LiveKit Room binds to the running event loop when it is made
    local = LocalAvatar(NOWHERE, width=320, height=180, identity="me")
    clip = FileAvatar(NOWHERE, green_clip)
    for session in (local, clip):
        assert isinstance(session, AvatarSession)
        assert session.state == AvatarState.STARTING
    assert (local.provider, local.identity) == ("local", "me")
    assert clip.provider == "file" and clip.identity.startswith("file-avatar-")


def test_room_target_hides_its_secret() -> None:
    target = RoomTarget("ws://x", "key", "s3cr3t-value", "room")
    assert "s3cr3t-value" not in repr(target)


def test_state_callbacks_fire_on_change_only_and_survive_errors() -> None:
    seen: list[AvatarState] = []
    s = StateEmitter()

    def broken(_: AvatarState) -> None:
        raise RuntimeError("listener bug")

    s.on_state(broken)
    s.on_state(seen.append)
    s._set_state(AvatarState.IDLE)
    s._set_state(AvatarState.IDLE)
    s._set_state(AvatarState.SPEAKING)
    assert seen == [AvatarState.IDLE, AvatarState.SPEAKING]


def test_speech_checks() -> None:
    assert check_speech("  hi  ") == "hi"
    with pytest.raises(InvalidInput):
        check_speech(None)
    with pytest.raises(InvalidInput) as e:
        check_speech("x" * 100_001)
    assert e.value.field == "text"


async def test_provider_options_are_checked() -> None:
    with pytest.raises(InvalidInput) as e:
        await get_provider("local").start(NOWHERE, quality="ultra")
    assert e.value.field == "quality"
    with pytest.raises(InvalidInput) as e:
        await get_provider("local").start(NOWHERE, colour="red")
    assert e.value.field == "colour"
    with pytest.raises(InvalidInput) as e:
        await get_provider("file").start(NOWHERE)
    assert e.value.field == "clip"
    for bad in (-1, 17, "lots", True):
        with pytest.raises(InvalidInput) as e:
            await get_provider("local").start(NOWHERE, noise=bad)
        assert e.value.field == "noise"


def test_probe_reads_the_clip(green_clip: Path) -> None:
    assert probe_clip(green_clip) == (320, 180, 15.0, True)


def test_files_that_are_not_videos_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    png = tmp_path / "still.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    cases = {
        text: "not a video file",
        png: "still image",
        empty: "not a video file",
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "does not exist or is not a file",
    }
    for path, reason in cases.items():
        with pytest.raises(InvalidInput) as e:
            probe_clip(path)
        assert e.value.field == "clip"
        assert reason in e.value.message, e.value.message


def test_cli_reports_a_bad_clip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    result = CliRunner().invoke(app, ["avatar", "file", str(bad), "--room", "r"])
    assert result.exit_code == 1
    assert "error (clip)" in result.output and "bad.mp4" in result.output


async def test_unreachable_livekit_is_a_clear_error() -> None:
    with pytest.raises(GreenroomError) as e:
        await get_provider("local").start(NOWHERE, quality="low")
    assert e.value.code == "livekit_unavailable" and "cannot join room 'nowhere'" in e.value.message


def test_big_clips_are_scaled_to_fit_1080p(tmp_path: Path) -> None:
    import av

    path = tmp_path / "big.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=5)
        s.width, s.height, s.pix_fmt = 2561, 1441, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((1441, 2561, 3), np.uint8), format="rgb24")
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    w, h, fps, has_audio = probe_clip(path)
    assert (w, h) == (1918, 1080) and fps == 5.0 and not has_audio
