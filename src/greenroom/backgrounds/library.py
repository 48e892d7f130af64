"""The upload library: images and videos users upload as session backgrounds.

Every upload is checked by *decoding* it, never by its name or declared type:

1. bytes are streamed into a temporary file under the library folder with a hard byte cap
   (:class:`Upload`), so an oversized body is cut off at the cap, whatever it claimed;
2. images: Pillow, allowed only the formats we accept, reads the header; the pixel count is
   checked *before* the pixels are decoded (decompression bombs stop here), then the whole
   image is decoded;
   videos: the magic bytes pick the one demuxer PyAV may use (Matroska/WebM or MP4/MOV,
   never FFmpeg's probe of every format it knows); the codec must be one we accept, the
   frame size is checked against ``max_video_pixels`` before any frame is decoded, the
   duration is measured from packet timestamps (a missing or lying header does not count)
   and refused past ``max_video_seconds``, then one frame is decoded;
3. the file gets a generated name (``bg_<hex>.<ext>``, extension from the detected format)
   and a small JPEG thumbnail; nothing from the user's file name reaches the disk.

Anything refused leaves nothing behind, and no message carries a Python type name, a path
or a decoder's own words.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from greenroom.errors import GreenroomError, InvalidInput, TooLarge

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # an 8K image is 33 Mpx
DEFAULT_MAX_VIDEO_PIXELS = 3840 * 2160
DEFAULT_MAX_VIDEO_SECONDS = 600.0
DEFAULT_MAX_ITEMS = 200
DEFAULT_MAX_TOTAL_BYTES = 2 * 1024**3
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
VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"}
# A frame rate no background needs: past it, a short file of tiny packets is refused too.
MAX_VIDEO_FPS = 240
NEITHER = (
    "the file is neither an image (PNG, JPEG, WebP, GIF, BMP) nor a video (MP4, WebM, MKV) "
    "that can be decoded"
)


class QuotaExceeded(InvalidInput):
    """The library already holds as many items or bytes as the API key may keep (HTTP 413)."""

    code = "quota_exceeded"
    status = 413


@dataclass(frozen=True)
class LibraryLimits:
    """What the library accepts. Bytes are counted as they arrive; pixels before decoding."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS
    max_items: int = DEFAULT_MAX_ITEMS  # quota: items kept (one API key: the whole library)
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES  # quota: bytes kept, thumbnails aside


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

    def __init__(self, folder: Path, max_bytes: int, over: GreenroomError | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=folder)
        self.path = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self.max_bytes = max_bytes
        self.over = over or TooLarge(
            f"file is larger than the {mib(max_bytes)} limit for backgrounds"
        )
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise self.over
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
        self.admission = threading.Lock()  # quota check and database insert, one at a time

    def new_upload(
        self, max_bytes: int | None = None, over: GreenroomError | None = None
    ) -> Upload:
        """A capped inbox file: ``max_bytes`` (default the per-file limit) and the error to
        raise past it."""
        cap = self.limits.max_bytes if max_bytes is None else max_bytes
        return Upload(self.incoming, cap, over)

    def sweep_inbox(self) -> int:
        """Delete what uploads left in the inbox (a crash mid-upload); call at start. Returns
        the number of files removed."""
        removed = 0
        if not self.incoming.is_dir():
            return 0
        for leftover in self.incoming.iterdir():
            with contextlib.suppress(OSError):
                if leftover.is_file() or leftover.is_symlink():
                    leftover.unlink()
                    removed += 1
        return removed

    def check_quota(self, items: int, total_bytes: int, size: int = 0) -> int:
        """Room left after one more item of ``size`` bytes joins a library of ``items`` items
        and ``total_bytes`` bytes (``size=0`` before the upload: its bytes are not known yet).

        Raises:
            QuotaExceeded: the item count or the byte total would pass its limit.
        """
        lim = self.limits
        if items + 1 > lim.max_items:
            raise QuotaExceeded(
                f"the background library is full: it holds {items} items and may keep "
                f"{lim.max_items}; delete some first",
                field="file",
            )
        if total_bytes + size > lim.max_total_bytes:
            raise QuotaExceeded(
                f"the background library is full: {mib(total_bytes)} stored, "
                f"{mib(lim.max_total_bytes)} allowed; delete some first",
                field="file",
            )
        return lim.max_total_bytes - total_bytes - size

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
                im = Image.open(path, formats=list(IMAGE_FORMATS))  # the header only
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
            except (OSError, SyntaxError, ValueError):
                raise InvalidInput("the image header is corrupt", field="file") from None
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
                except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning):
                    raise InvalidInput(
                        "the image could not be decoded: its data is truncated or damaged",
                        field="file",
                    ) from None
        thumb.thumbnail(THUMBNAIL_SIZE)
        thumb.save(thumb_path, "JPEG", quality=85)
        return "image", fmt, width, height, None

    def _probe_video(self, path: Path, thumb_path: Path) -> tuple[str, str, int, int, float]:
        demuxer = sniff_video(path)
        if demuxer is None:
            raise InvalidInput(NEITHER, field="file")
        with _open_video(path, demuxer) as container:
            stream = next(iter(container.streams.video), None)
            if stream is None:
                raise InvalidInput("the file has no video stream", field="file")
            codec = stream.codec_context.name if stream.codec_context else "unknown"
            if codec not in VIDEO_CODECS:
                raise InvalidInput(
                    f"video codec {codec!r} is not supported; use H.264, HEVC, VP8, VP9 or AV1",
                    field="file",
                )
            width, height = stream.codec_context.width, stream.codec_context.height
            self._check_pixels(width, height, self.limits.max_video_pixels, "video")
            webm = codec in {"vp8", "vp9", "av1"}
            fmt = "mp4" if demuxer == "mov" else ("webm" if webm else "mkv")
            declared = container.duration / 1_000_000 if container.duration else 0.0
            self._check_seconds(declared)
            measured = self._measure_seconds(container, stream)
        with _open_video(path, demuxer) as container:
            first = _first_frame(container)
            self._check_pixels(first.width, first.height, self.limits.max_video_pixels, "video")
            image = first.to_image()
        image.thumbnail(THUMBNAIL_SIZE)
        image.convert("RGB").save(thumb_path, "JPEG", quality=85)
        return "video", fmt, width, height, max(declared, measured)

    def _check_seconds(self, seconds: float) -> None:
        if seconds > self.limits.max_video_seconds:
            raise TooLarge(
                f"video is at least {seconds:.0f} s long; the limit is "
                f"{self.limits.max_video_seconds:.0f} s"
            )

    def _measure_seconds(self, container: Any, stream: Any) -> float:
        """Seconds from the first packet's timestamp to the end of the last, read up to the cap.

        Packets are demuxed, not decoded, so this costs a read of the file. Refuses as soon as
        the span passes ``max_video_seconds`` or the packet count passes ``MAX_VIDEO_FPS``
        frames a second over the cap.
        """
        import av

        cap = self.limits.max_video_seconds
        max_packets = int(cap * MAX_VIDEO_FPS)
        tb = stream.time_base
        start: float | None = None
        end = 0.0
        count = 0
        try:
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or tb is None:
                    continue
                count += 1
                t0 = float(ts * tb)
                t1 = float((ts + (packet.duration or 0)) * tb)
                start = t0 if start is None else min(start, t0)
                end = max(end, t1)
                self._check_seconds(end - start)
                if count > max_packets:
                    raise TooLarge(
                        f"video has more than {max_packets} frames ({MAX_VIDEO_FPS} a second "
                        f"over the {cap:.0f} s limit)"
                    )
        except (av.FFmpegError, ValueError, OverflowError):
            raise InvalidInput(
                "the video could not be read to its end: the file is truncated or damaged",
                field="file",
            ) from None
        return 0.0 if start is None else max(0.0, end - start)


IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def sniff_video(path: Path) -> str | None:
    """The PyAV demuxer for a file's magic bytes: ``matroska`` (MKV, WebM), ``mov`` (MP4,
    MOV), or None for anything else."""
    with path.open("rb") as f:
        head = f.read(12)
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "matroska"
    if head[4:8] == b"ftyp":  # ISO base media file
        return "mov"
    return None


@contextlib.contextmanager
def _open_video(path: Path, demuxer: str) -> Iterator[Any]:
    """Open ``path`` with exactly ``demuxer`` (no probing); errors become :class:`InvalidInput`."""
    import av  # PyAV is heavy; only videos need it

    try:
        container = av.open(str(path), "r", format=demuxer)
    except (av.FFmpegError, OSError, ValueError):
        raise InvalidInput(
            "the video container is damaged and cannot be read", field="file"
        ) from None
    with container:
        yield container


def _first_frame(container: Any) -> Any:
    import av

    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            return frame
    except (av.FFmpegError, ValueError):
        raise InvalidInput(
            "the video could not be decoded: its data is truncated or damaged", field="file"
        ) from None
    raise InvalidInput("the video has no decodable frame", field="file")


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


def mib(n: int) -> str:
    """``n`` bytes for a message: whole MiB from 1 MiB up, else bytes."""
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"
