"""The upload library: images and videos users upload as session backgrounds.

Every upload is checked by *decoding* it, never by its name or declared type:

1. bytes are streamed into a temporary file under the library folder with a hard byte cap
   (:class:`Upload`), so an oversized body is cut off at the cap, whatever it claimed;
2. images: Pillow reads the header, the pixel count is checked *before* the pixels are
   decoded (decompression bombs stop here), then the whole image is decoded;
   videos: PyAV probes the container, checks frame size and duration, and decodes a frame;
3. the file gets a generated name (``bg_<hex>.<ext>``, extension from the detected format)
   and a small JPEG thumbnail; nothing from the user's file name reaches the disk.

Anything refused leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from greenroom.errors import GreenroomError, InvalidInput

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # an 8K image is 33 Mpx
DEFAULT_MAX_VIDEO_PIXELS = 3840 * 2160
DEFAULT_MAX_VIDEO_SECONDS = 600.0
THUMBNAIL_SIZE = (320, 180)

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
IMAGE_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}
VIDEO_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "mkv": "video/x-matroska"}


class TooLarge(GreenroomError):
    """The upload is bigger than the library accepts (HTTP 413)."""

    code = "payload_too_large"
    status = 413


@dataclass(frozen=True)
class LibraryLimits:
    """What the library accepts. Bytes are counted as they arrive; pixels before decoding."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS


@dataclass(frozen=True)
class LibraryItem:
    """A validated file, stored under its generated name."""

    id: str
    name: str
    kind: str  # "image" | "video"
    format: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    duration_s: float | None
    stored_name: str
    thumbnail_name: str


class Upload:
    """A temporary file that refuses to grow past ``max_bytes``.

    ``write`` raises :class:`TooLarge` as soon as the cap is crossed; ``discard`` removes the
    file (the caller always calls it, or hands the path to :meth:`BackgroundLibrary.ingest`).
    """

    def __init__(self, folder: Path, max_bytes: int):
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=folder)
        self.path = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self.max_bytes = max_bytes
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(
                f"file is larger than the {_mib(self.max_bytes)} limit for backgrounds",
            )
        self._file.write(chunk)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class BackgroundLibrary:
    """Uploaded backgrounds stored under ``root`` (usually ``<data dir>/backgrounds``)."""

    def __init__(self, root: Path, limits: LibraryLimits | None = None):
        self.root = root
        self.limits = limits or LibraryLimits()
        self.incoming = root / ".incoming"
        self.root.mkdir(parents=True, exist_ok=True)

    def new_upload(self) -> Upload:
        return Upload(self.incoming, self.limits.max_bytes)

    def path(self, stored_name: str) -> Path:
        """The file for a stored name (names are generated, never user-given)."""
        if not re.fullmatch(r"bg_[0-9a-f]{24}(\.thumb)?\.[a-z0-9]{2,5}", stored_name):
            raise InvalidInput("not a library file name", field="stored_name")
        return self.root / stored_name

    def ingest(self, upload_path: Path, original_name: str | None) -> LibraryItem:
        """Validate ``upload_path`` by decoding it and move it into the library.

        Raises:
            InvalidInput: not a decodable image or video of a supported format (field ``file``).
            TooLarge: too many pixels or too long a video.
        """
        item_id = f"bg_{secrets.token_hex(12)}"
        thumb_name = f"{item_id}.thumb.jpg"
        thumb_path = self.root / thumb_name
        try:
            size = upload_path.stat().st_size
            if size == 0:
                raise InvalidInput("the uploaded file is empty", field="file")
            probe = self._probe_image(upload_path, thumb_path)
            if probe is None:
                probe = self._probe_video(upload_path, thumb_path)
            kind, fmt, width, height, duration = probe
            stored_name = f"{item_id}.{'jpg' if fmt == 'jpeg' else fmt}"
            os.replace(upload_path, self.root / stored_name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                upload_path.unlink()
            with contextlib.suppress(FileNotFoundError):
                thumb_path.unlink()
            raise
        content_type = (IMAGE_TYPES if kind == "image" else VIDEO_TYPES)[fmt]
        return LibraryItem(
            id=item_id,
            name=clean_name(original_name),
            kind=kind,
            format=fmt,
            content_type=content_type,
            size_bytes=size,
            width=width,
            height=height,
            duration_s=duration,
            stored_name=stored_name,
            thumbnail_name=thumb_name,
        )

    def remove(self, stored_name: str, thumbnail_name: str) -> None:
        for name in (stored_name, thumbnail_name):
            with contextlib.suppress(FileNotFoundError, InvalidInput):
                self.path(name).unlink()

    # probing -------------------------------------------------------------------------------
    def _check_pixels(self, width: int, height: int, limit: int, what: str) -> None:
        if width <= 0 or height <= 0:
            raise InvalidInput(f"{what} has no pixels ({width}x{height})", field="file")
        if width * height > limit:
            raise TooLarge(
                f"{what} is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                f"the limit is {limit / 1e6:.1f} megapixels"
            )

    def _probe_image(self, path: Path, thumb_path: Path) -> tuple[str, str, int, int, None] | None:
        """Image facts, or None when Pillow does not recognise the file at all."""
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(path)  # reads the header only
            except UnidentifiedImageError:
                if _looks_like_image(path):
                    raise InvalidInput(
                        "the image header is corrupt: it starts like an image but cannot be read",
                        field="file",
                    ) from None
                return None
            except Image.DecompressionBombError as exc:  # Pillow's own, far higher, limit
                found = re.search(r"\((\d+) pixels\)", str(exc))
                count = f" ({int(found.group(1)) / 1e6:.1f} megapixels)" if found else ""
                raise TooLarge(
                    f"image has too many pixels{count}; the limit is "
                    f"{self.limits.max_pixels / 1e6:.1f} megapixels"
                ) from None
            except (OSError, SyntaxError, ValueError) as exc:
                raise InvalidInput(f"the image header is corrupt: {exc}", field="file") from None
            with im:
                fmt = IMAGE_FORMATS.get(im.format or "")
                if fmt is None:
                    raise InvalidInput(
                        f"images in {im.format} format are not supported; "
                        f"use {', '.join(sorted(IMAGE_TYPES))}",
                        field="file",
                    )
                width, height = im.size
                self._check_pixels(width, height, self.limits.max_pixels, "image")
                try:
                    im.load()  # decode every pixel: truncated or corrupt data fails here
                    thumb = im.convert("RGB")
                except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
                    raise InvalidInput(
                        f"the image could not be decoded: {exc}", field="file"
                    ) from None
        thumb.thumbnail(THUMBNAIL_SIZE)
        thumb.save(thumb_path, "JPEG", quality=85)
        return "image", fmt, width, height, None

    def _probe_video(self, path: Path, thumb_path: Path) -> tuple[str, str, int, int, float]:
        import av  # PyAV is heavy; only videos need it

        try:
            container = av.open(str(path), "r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InvalidInput(
                "the file is neither an image (PNG, JPEG, WebP, GIF, BMP) nor a video "
                f"(MP4, WebM, MKV) that can be decoded ({type(exc).__name__})",
                field="file",
            ) from None
        with container:
            fmt_names = set(container.format.name.split(","))
            stream = next(iter(container.streams.video), None)
            if stream is None:
                raise InvalidInput("the file has no video stream", field="file")
            width, height = stream.codec_context.width, stream.codec_context.height
            if fmt_names & {"mp4", "mov"}:
                fmt = "mp4"
            elif "matroska" in fmt_names:
                fmt = "webm" if stream.codec_context.name in {"vp8", "vp9", "av1"} else "mkv"
            else:
                raise InvalidInput(
                    f"video container {container.format.name!r} is not supported; use MP4 or WebM",
                    field="file",
                )
            duration = float(container.duration / 1_000_000) if container.duration else 0.0
            if duration > self.limits.max_video_seconds:
                raise TooLarge(
                    f"video is {duration:.0f} s long; the limit is "
                    f"{self.limits.max_video_seconds:.0f} s"
                )
            first = None
            try:
                for frame in container.decode(stream):
                    first = frame.to_image()
                    break
            except (av.FFmpegError, ValueError) as exc:
                raise InvalidInput(
                    f"the video could not be decoded ({type(exc).__name__})", field="file"
                ) from None
            if first is None:
                raise InvalidInput("the video has no decodable frame", field="file")
        first.thumbnail(THUMBNAIL_SIZE)
        first.convert("RGB").save(thumb_path, "JPEG", quality=85)
        return "video", fmt, width, height, duration


IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def _looks_like_image(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(16)
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def clean_name(name: str | None) -> str:
    """A display name from a user's file name: base name, printable, at most 200 characters."""
    if not name:
        return "upload"
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:200] or "upload"


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"
