"""The background library over HTTP: uploads validated by decoding, limits, thumbnails."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from greenroom.api import create_app
from greenroom.backgrounds.library import LibraryLimits

from .support import bomb_png, library_files, make_settings, mp4_bytes, open_client, png_bytes

pytestmark = pytest.mark.unit


async def upload(client: httpx.AsyncClient, content: bytes, name: str = "pic.png", **kw: object):
    return await client.post("/v1/backgrounds", files={"file": (name, content)}, **kw)


async def test_upload_image_list_get_thumbnail_delete(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    data = png_bytes((640, 360), (200, 30, 40))
    r = await upload(client, data, "../../etc/beach.png")
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["id"].startswith("bg_")
    assert (item["kind"], item["format"], item["width"], item["height"]) == (
        "image",
        "png",
        640,
        360,
    )
    assert item["name"] == "beach.png"  # the path part of the client's name is dropped
    assert item["size_bytes"] == len(data)

    # stored under a generated name, never the client's
    assert library_files(data_dir) == sorted([f"{item['id']}.png", f"{item['id']}.thumb.jpg"])

    listed = (await client.get("/v1/backgrounds")).json()["backgrounds"]
    assert [b["id"] for b in listed] == [item["id"]]
    assert (await client.get(f"/v1/backgrounds/{item['id']}")).json()["width"] == 640

    thumb = await client.get(item["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(thumb.content))
    assert im.size == (320, 180)
    r, g, b = im.convert("RGB").getpixel((160, 90))
    assert abs(r - 200) < 12 and abs(g - 30) < 12 and abs(b - 40) < 12

    assert (await client.get(item["url"])).content == data

    assert (await client.delete(f"/v1/backgrounds/{item['id']}")).status_code == 204
    assert library_files(data_dir) == []
    r = await client.get(f"/v1/backgrounds/{item['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"background {item['id']!r} not found"


async def test_upload_video(client: httpx.AsyncClient, tmp_path: Path) -> None:
    data = mp4_bytes(tmp_path / "clip.mp4", color=(10, 120, 240))
    r = await upload(client, data, "clip.bin", data={"name": "Blue loop"})
    assert r.status_code == 201, r.text
    item = r.json()
    assert (item["kind"], item["format"], item["width"], item["height"]) == ("video", "mp4", 64, 48)
    assert item["name"] == "Blue loop"
    assert item["duration_s"] == pytest.approx(1.0, abs=0.2)
    thumb = Image.open(io.BytesIO((await client.get(item["thumbnail_url"])).content)).convert("RGB")
    r_, _g, b_ = thumb.getpixel((thumb.width // 2, thumb.height // 2))
    assert b_ > 200 and r_ < 40


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png_bytes()[:60], "could not be decoded"),  # a truncated PNG: header fine, pixels cut
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "corrupt"),
        (b"hello, I am not a picture" * 10, "neither an image"),
        (b"", "empty"),
    ],
    ids=["truncated-png", "png-garbage", "text", "empty"],
)
async def test_corrupt_files_are_refused_and_leave_nothing(
    client: httpx.AsyncClient, data_dir: Path, data: bytes, message: str
) -> None:
    r = await upload(client, data)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == "file" and message in err["message"]
    assert library_files(data_dir) == []
    assert (await client.get("/v1/backgrounds")).json()["backgrounds"] == []


async def test_declared_gigabyte_is_refused_before_reading(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\nxx\r\n--b--\r\n"
    )
    r = await client.post(
        "/v1/backgrounds",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(10**9)},
    )
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "payload_too_large" and "1000000000 bytes" in err["message"]
    assert library_files(data_dir) == []


async def test_body_over_the_cap_is_cut_off_whatever_it_claims(data_dir: Path) -> None:
    app = create_app(
        make_settings(data_dir), library_limits=LibraryLimits(max_bytes=50_000), warm_up=False
    )
    big = png_bytes((1200, 1200))
    big += b"\x00" * max(0, 200_000 - len(big))
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    ).encode()

    async def stream() -> AsyncIterator[bytes]:  # chunked: no Content-Length at all
        yield head
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]
        yield f"\r\n--{boundary}--\r\n".encode()

    async for client in open_client(app):
        r = await client.post(
            "/v1/backgrounds",
            content=stream(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 413, r.text
        assert "50000 bytes" in r.json()["error"]["message"]
        # and a small lie: Content-Length says 1 KB, the body is 200 KB
        r = await client.post(
            "/v1/backgrounds",
            content=stream(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": "1000",
            },
        )
        assert r.status_code in (413, 422), r.text
    assert library_files(data_dir) == []


@pytest.mark.parametrize(
    ("data", "pixels"),
    [
        (bomb_png(50_000, 50_000, rows=1), "2500.0 megapixels"),  # header claims 2.5 Gpx
        (bomb_png(8_000, 8_000), "64.0 megapixels"),  # real, 64 Mpx of zeros in ~70 KB
    ],
    ids=["50000x50000-header", "8000x8000-compressed"],
)
async def test_decompression_bombs_are_refused(
    client: httpx.AsyncClient, data_dir: Path, data: bytes, pixels: str
) -> None:
    assert len(data) < 200_000
    r = await upload(client, data)
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "payload_too_large"
    assert pixels in err["message"]
    assert "the limit is 40.0 megapixels" in err["message"]
    assert library_files(data_dir) == []


async def test_upload_needs_multipart_with_a_file_part(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/backgrounds", content=png_bytes(), headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "invalid_input",
        "message": "send the file as multipart/form-data with a part named 'file'",
        "field": "file",
    }
    r = await client.post("/v1/backgrounds", files={"picture": ("a.png", png_bytes())})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "the form has no part named 'file'"


async def test_background_in_use_by_a_template_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    bg = (await upload(client, png_bytes())).json()
    t = await client.post("/v1/templates", json={"name": "beach", "background": bg["id"]})
    assert t.status_code == 201, t.text
    assert t.json()["background"] == bg["id"]
    r = await client.delete(f"/v1/backgrounds/{bg['id']}")
    assert r.status_code == 409
    assert "used by template(s) beach" in r.json()["error"]["message"]
    await client.patch(f"/v1/templates/{t.json()['id']}", json={"background": "#112233"})
    assert (await client.delete(f"/v1/backgrounds/{bg['id']}")).status_code == 204
