"""Helpers for API tests: settings, a client over the ASGI app, generated media."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI
from PIL import Image
from pydantic import SecretStr

from greenroom.config import Settings
from greenroom.livekit_server import LiveKitServer

API_KEY = "test-key-0123456789"
AUTH = {"X-Api-Key": API_KEY}


def make_settings(
    data_dir: Path, livekit: LiveKitServer | None = None, **extra: object
) -> Settings:
    lk: dict[str, object] = {"livekit_url": "ws://127.0.0.1:9"}  # nothing listens there
    if livekit is not None:
        lk = {
            "livekit_url": livekit.url,
            "livekit_api_key": livekit.api_key,
            "livekit_api_secret": SecretStr(livekit.api_secret),
        }
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        api_key=SecretStr(API_KEY),
        **lk,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://greenroom.test", headers=AUTH, timeout=60
        ) as client:
            yield client


def png_bytes(
    size: tuple[int, int] = (64, 36), color: tuple[int, int, int] = (200, 30, 40)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A greyscale PNG claiming ``width`` x ``height``; ``rows`` of zero pixels are really
    compressed into it (all of them by default: tiny on disk, huge once decoded)."""
    rows = height if rows is None else rows
    comp = zlib.compressobj(9)
    line = b"\x00" * (width + 1)
    body = b"".join(comp.compress(line) for _ in range(rows)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    )


def mp4_bytes(path: Path, color: tuple[int, int, int] = (10, 120, 240), frames: int = 10) -> bytes:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        img = np.zeros((48, 64, 3), np.uint8)
        img[:] = color
        for _ in range(frames):
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path.read_bytes()


def library_files(data_dir: Path) -> list[str]:
    """Every file under the library folder (the inbox included)."""
    root = data_dir / "backgrounds"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
