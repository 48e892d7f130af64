"""Uploads that cannot hurt, over HTTP: 8K and endless videos, the library quota, the
multipart parser's own caps, the inbox swept at start, stopped sessions, clean messages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backgrounds.media import piped_mkv, sized_mp4
from greenroom.api import create_app
from greenroom.backgrounds.library import LibraryLimits
from greenroom.store.models import SessionRow
from greenroom.tokens import viewer_token

from .support import library_files, make_settings, mp4_bytes, open_client, png_bytes

pytestmark = pytest.mark.unit

# What a client must never read: Python type names, tracebacks, paths, reprs.
INTERNALS = re.compile(
    r"Error\b|Exception|Traceback|File \"|\.py\b|/tmp|/home|upload-|<[a-z_.]+ |\\x[0-9a-f]{2}"
)


async def upload(client: httpx.AsyncClient, content: bytes, name: str = "f.bin"):
    return await client.post("/v1/backgrounds", files={"file": (name, content)})


async def _client(data_dir: Path, **kw: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(data_dir), warm_up=False, **kw)  # type: ignore[arg-type]
    async for c in open_client(app):
        yield c


async def test_an_8k_video_is_refused_with_413(
    client: httpx.AsyncClient, data_dir: Path, tmp_path: Path
) -> None:
    r = await upload(client, sized_mp4(tmp_path / "8k.mp4", 7680, 4320), "8k.mp4")
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "payload_too_large"
    assert "7680x4320" in err["message"] and "the limit is 8.3 megapixels" in err["message"]
    assert library_files(data_dir) == []


async def test_a_700_s_matroska_without_duration_header_is_refused_with_413(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    r = await upload(client, piped_mkv(700), "stream.mkv")
    assert r.status_code == 413, r.text
    assert "the limit is 600 s" in r.json()["error"]["message"]
    assert library_files(data_dir) == []


async def test_limits_come_from_settings(data_dir: Path, tmp_path: Path) -> None:
    app = create_app(
        make_settings(data_dir, upload_max_video_pixels=64 * 48 - 1, upload_max_bytes=10_000),
        warm_up=False,
    )
    async for c in open_client(app):
        r = await upload(c, mp4_bytes(tmp_path / "small.mp4"), "small.mp4")
        assert r.status_code == 413 and "64x48" in r.json()["error"]["message"]
        r = await upload(c, png_bytes((300, 300)) + b"\0" * 20_000, "big.png")
        assert r.status_code == 413 and "10000 bytes" in r.json()["error"]["message"]


async def test_library_quota_counts_items(data_dir: Path) -> None:
    app = create_app(make_settings(data_dir, library_max_items=2), warm_up=False)
    async for c in open_client(app):
        for colour in ((1, 2, 3), (4, 5, 6)):
            assert (await upload(c, png_bytes(color=colour), "a.png")).status_code == 201
        r = await upload(c, png_bytes(), "a.png")
        assert r.status_code == 413
        err = r.json()["error"]
        assert err["code"] == "quota_exceeded" and err["field"] == "file"
        assert err["message"] == (
            "the background library is full: it holds 2 items and may keep 2; delete some first"
        )
        first = (await c.get("/v1/backgrounds")).json()["backgrounds"][0]
        assert (await c.delete(f"/v1/backgrounds/{first['id']}")).status_code == 204
        assert (await upload(c, png_bytes(), "a.png")).status_code == 201
    assert len(library_files(data_dir)) == 4  # two items, two thumbnails, nothing in the inbox


async def test_library_quota_counts_bytes(data_dir: Path) -> None:
    one = png_bytes((200, 200)) + b""
    quota = len(one) * 2 + len(one) // 2  # two fit, a third does not
    app = create_app(make_settings(data_dir, library_max_bytes=quota), warm_up=False)
    async for c in open_client(app):
        for _ in range(2):
            assert (await upload(c, one, "a.png")).status_code == 201
        r = await upload(c, one, "a.png")
        assert r.status_code == 413
        err = r.json()["error"]
        assert err["code"] == "quota_exceeded"
        assert "past its" in err["message"] and "quota" in err["message"]
        assert len((await c.get("/v1/backgrounds")).json()["backgrounds"]) == 2
    assert len(library_files(data_dir)) == 4


async def test_a_body_that_goes_on_after_its_last_boundary_is_cut_off(data_dir: Path) -> None:
    """The parser skips whatever follows the closing boundary: the body cap stops it."""
    boundary = "edge"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        ).encode()
        + png_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    sent = {"bytes": 0}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: only the parser can stop it
        yield form
        for _ in range(5 * 1024 // 32):  # 5 MiB of epilogue
            sent["bytes"] += 32_768
            yield b"z" * 32_768

    async for c in _client(data_dir, library_limits=LibraryLimits(max_bytes=50_000)):
        r = await c.post(
            "/v1/backgrounds",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 413, r.text
        assert "the request body is larger than" in r.json()["error"]["message"]
        assert sent["bytes"] < 1024 * 1024  # stopped near the cap, not at the end
    assert library_files(data_dir) == []


async def test_multipart_part_count_is_capped(client: httpx.AsyncClient, data_dir: Path) -> None:
    fields = {f"f{i}": "x" for i in range(50)}
    r = await client.post("/v1/backgrounds", files={"file": ("a.png", png_bytes())}, data=fields)
    assert r.status_code == 413, r.text
    assert "more than 8 parts" in r.json()["error"]["message"]
    assert library_files(data_dir) == []


async def test_inbox_leftovers_are_swept_at_start(data_dir: Path) -> None:
    inbox = data_dir / "backgrounds" / ".incoming"
    inbox.mkdir(parents=True)
    (inbox / "upload-crashed").write_bytes(b"\0" * 10_000)
    async for c in _client(data_dir):
        assert (await c.get("/v1/backgrounds")).status_code == 200
        assert library_files(data_dir) == []


async def test_a_stopped_sessions_viewer_link_cannot_upload(data_dir: Path) -> None:
    settings = make_settings(data_dir)
    app = create_app(settings, warm_up=False)
    room = "gr-stopped-room"
    app.state.services.repo.add_session(
        SessionRow(
            id="ses_stopped0000000000",
            template_id="tpl_x",
            template_name="t",
            provider="local",
            status="stopped",
            stop_reason="stopped_by_user",
            room=room,
            room_created=True,
            viewer_identity="viewer",
            background="#00ff00",
            idle_timeout=60,
        )
    )
    token = viewer_token(
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        room=room,
        identity="viewer",
    )
    async for c in open_client(app):
        r = await c.post(
            "/viewer/ses_stopped0000000000/api/backgrounds",
            files={"file": ("a.png", png_bytes())},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 409, r.text
        assert r.json()["error"]["message"] == (
            "the session has stopped; it cannot add backgrounds any more"
        )
    assert library_files(data_dir) == []


@pytest.mark.parametrize(
    "name",
    ["text", "mp4-garbage", "mp4-truncated", "mkv-garbage", "png-garbage", "png-truncated"],
)
async def test_refusals_speak_without_python_internals(
    client: httpx.AsyncClient, tmp_path: Path, name: str
) -> None:
    mp4 = mp4_bytes(tmp_path / "a.mp4")
    data = {
        "text": b"hello, I am not a picture" * 10,
        "mp4-garbage": b"\0\0\0\x18ftypisom" + b"\xff" * 500,
        "mp4-truncated": mp4[: len(mp4) // 2],
        "mkv-garbage": b"\x1a\x45\xdf\xa3" + b"\x00\xff" * 300,
        "png-garbage": b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,
        "png-truncated": png_bytes((300, 200))[:90],
    }[name]
    r = await upload(client, data)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == "file"
    assert not INTERNALS.search(err["message"]), err["message"]
