"""The upload library's video checks: demuxer from magic bytes, codec, pixels, real duration."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from greenroom.backgrounds.library import BackgroundLibrary, LibraryLimits, TooLarge, sniff_video
from greenroom.errors import InvalidInput

from .media import colour_seconds_mp4, encoded_video, piped_mkv, sized_mp4

pytestmark = pytest.mark.unit


@pytest.fixture
def library(tmp_path: Path) -> BackgroundLibrary:
    return BackgroundLibrary(tmp_path / "lib")


def _inbox(library: BackgroundLibrary, data: bytes) -> Path:
    upload = library.new_upload()
    upload.write(data)
    upload.close()
    return upload.path


def _stored(library: BackgroundLibrary) -> list[str]:
    return sorted(p.name for p in library.root.rglob("*") if p.is_file())


def test_an_8k_video_is_refused_before_decoding(library: BackgroundLibrary, tmp_path: Path) -> None:
    path = _inbox(library, sized_mp4(tmp_path / "8k.mp4", 7680, 4320))
    with pytest.raises(TooLarge) as err:
        library.ingest(path, "8k.mp4")
    assert err.value.status == 413
    assert "7680x4320 (33.2 megapixels)" in err.value.message
    assert "the limit is 8.3 megapixels" in err.value.message
    assert _stored(library) == []


def test_a_piped_matroska_without_duration_is_measured_and_refused(
    library: BackgroundLibrary,
) -> None:
    data = piped_mkv(700)
    path = _inbox(library, data)
    with av.open(str(path)) as c:  # the container really does not say how long it is
        assert c.duration is None
    with pytest.raises(TooLarge) as err:
        library.ingest(path, "long.mkv")
    assert err.value.status == 413
    assert "the limit is 600 s" in err.value.message
    assert _stored(library) == []


def test_a_short_piped_matroska_gets_its_measured_duration(library: BackgroundLibrary) -> None:
    item = library.ingest(_inbox(library, piped_mkv(12)), "short.mkv")
    assert (item.kind, item.format, item.width, item.height) == ("video", "mkv", 16, 16)
    assert item.duration_s == pytest.approx(12.0, abs=1.01)


def test_duration_cap_is_a_setting(tmp_path: Path) -> None:
    library = BackgroundLibrary(tmp_path / "lib", LibraryLimits(max_video_seconds=2))
    clip = colour_seconds_mp4(tmp_path / "c.mp4", [(255, 0, 0)] * 3)
    path = _inbox(library, clip.read_bytes())
    with pytest.raises(TooLarge, match="the limit is 2 s"):
        library.ingest(path, "c.mp4")


def test_only_matroska_and_mp4_reach_a_demuxer(tmp_path: Path) -> None:
    mkv = piped_mkv(1)
    mp4 = colour_seconds_mp4(tmp_path / "a.mp4", [(0, 0, 255)]).read_bytes()
    ts = encoded_video(tmp_path / "a.ts", "libx264", "mpegts")
    avi = encoded_video(tmp_path / "a.avi", "mpeg4", "avi")
    for name, data, expected in [
        ("mkv", mkv, "matroska"),
        ("mp4", mp4, "mov"),
        ("ts", ts, None),
        ("avi", avi, None),
        ("concat", b"ffconcat version 1.0\nfile a.mp4\n", None),
        ("hls", b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n", None),
    ]:
        (tmp_path / name).write_bytes(data)
        assert sniff_video(tmp_path / name) == expected, name


@pytest.mark.parametrize(
    ("codec", "container", "message"),
    [
        ("mpeg4", "avi", "neither an image"),  # a container FFmpeg knows but we do not take
        ("libx264", "mpegts", "neither an image"),
        ("mjpeg", "matroska", "video codec 'mjpeg' is not supported"),
    ],
)
def test_other_containers_and_codecs_are_refused(
    library: BackgroundLibrary, tmp_path: Path, codec: str, container: str, message: str
) -> None:
    path = _inbox(library, encoded_video(tmp_path / "v", codec, container))
    with pytest.raises(InvalidInput, match=message) as err:
        library.ingest(path, "v")
    assert err.value.field == "file"
    assert "mpegts" not in err.value.message and "avi" not in err.value.message
    assert _stored(library) == []


def test_an_implausible_frame_count_is_refused(tmp_path: Path) -> None:
    """One second at 600 frames a second: short, but more packets than any background needs."""
    library = BackgroundLibrary(tmp_path / "lib", LibraryLimits(max_video_seconds=2))
    clip = colour_seconds_mp4(tmp_path / "fast.mp4", [(0, 128, 0)], fps=600)
    with pytest.raises(TooLarge, match="more than 480 frames"):
        library.ingest(_inbox(library, clip.read_bytes()), "fast.mp4")
    assert _stored(library) == []
