"""Streaming multipart parsing into a capped temporary file (no whole-body buffering).

FastAPI's ``UploadFile`` reads the entire body before a handler runs; here the bytes go
through ``python_multipart``'s streaming parser straight into an :class:`Upload`, which
stops at the byte cap. A declared ``Content-Length`` over the cap is refused before any
byte is read; a body that lies about its length is still cut off at the cap.

The parser has caps of its own: the whole body (file cap plus ``MULTIPART_OVERHEAD``),
everything that is not file data (part headers and text fields, ``MULTIPART_OVERHEAD``) and
the number of parts (``MAX_PARTS``). The library quota (items and bytes) is checked before
the body is read, bounds the file cap, and is checked again, with the database insert, under
the library's admission lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from greenroom.backgrounds.library import (
    BackgroundLibrary,
    QuotaExceeded,
    Upload,
    mib,
)
from greenroom.errors import GreenroomError, InsufficientStorage, InvalidInput, TooLarge
from greenroom.store.models import BackgroundRow
from greenroom.store.repo import Repo

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small text fields
MAX_TEXT_FIELD = 1000
MAX_PARTS = 8


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)


@dataclass
class ParsedUpload:
    upload: Upload
    filename: str | None
    fields: dict[str, str]


async def receive_file(
    library: BackgroundLibrary,
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    *,
    max_bytes: int | None = None,
    over: GreenroomError | None = None,
) -> ParsedUpload:
    """Read a ``multipart/form-data`` body with one ``file`` part into the library's inbox.

    Args:
        max_bytes: cap on the file (default the library's per-file cap).
        over: the error past ``max_bytes`` (default :class:`TooLarge` naming the cap).

    Raises:
        TooLarge: declared or actual size over the cap, or too many parts or header bytes
            (HTTP 413).
        InvalidInput: not multipart, no ``file`` part, malformed body (HTTP 422).
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInput(
            "send the file as multipart/form-data with a part named 'file'", field="file"
        )
    cap = library.limits.max_bytes if max_bytes is None else max_bytes
    body_cap = cap + MULTIPART_OVERHEAD
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidInput("Content-Length is not a number", field="Content-Length") from None
        if declared > body_cap:
            if over is not None:
                raise over
            raise TooLarge(
                f"the request declares {declared} bytes; backgrounds may be at most {cap} bytes"
            )

    upload = library.new_upload(cap, over)
    parts: list[_Part] = []
    current: list[_Part] = []
    header_field = bytearray()
    header_value = bytearray()
    state = {"file_seen": False, "in_file": False, "other_bytes": 0, "parts": 0}

    def count_other(n: int) -> None:
        state["other_bytes"] += n
        if state["other_bytes"] > MULTIPART_OVERHEAD:
            raise TooLarge(
                f"part headers and form fields other than 'file' are limited to "
                f"{MULTIPART_OVERHEAD} bytes"
            )

    def on_part_begin() -> None:
        state["parts"] += 1
        if state["parts"] > MAX_PARTS:
            raise TooLarge(f"the form has more than {MAX_PARTS} parts")
        current[:] = [_Part()]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        count_other(end - start)
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        count_other(end - start)
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        current[0].headers[header_field.decode("latin-1").lower()] = header_value.decode("latin-1")
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        part = current[0]
        _, disp = parse_options_header(part.headers.get("content-disposition", ""))
        part.name = disp.get(b"name", b"").decode("utf-8", "replace") or None
        fname = disp.get(b"filename")
        part.filename = fname.decode("utf-8", "replace") if fname is not None else None
        if part.name == "file":
            if state["file_seen"]:
                raise InvalidInput("send exactly one part named 'file'", field="file")
            state["file_seen"] = state["in_file"] = True

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            upload.write(data[start:end])
            return
        count_other(end - start)
        current[0].text.extend(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False
        parts.append(current[0])

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > body_cap:
                raise over or TooLarge(
                    f"the request body is larger than {body_cap} bytes; backgrounds may be at "
                    f"most {cap} bytes"
                )
            if chunk:
                parser.write(chunk)
        parser.finalize()
        upload.close()
    except GreenroomError:
        upload.discard()
        raise
    except OSError as exc:
        upload.discard()
        if _out_of_space(exc):
            raise _out_of_space_error() from None
        raise
    except Exception:  # the parser's own errors: a malformed body (its words stay in here)
        upload.discard()
        raise InvalidInput(
            "malformed multipart body: check the boundary and each part's headers", field="file"
        ) from None
    file_part = next((p for p in parts if p.name == "file"), None)
    if file_part is None:
        upload.discard()
        raise InvalidInput("the form has no part named 'file'", field="file")
    fields = {
        p.name: p.text[:MAX_TEXT_FIELD].decode("utf-8", "replace")
        for p in parts
        if p.name and p.name != "file"
    }
    return ParsedUpload(upload=upload, filename=file_part.filename, fields=fields)


async def add_to_library(
    library: BackgroundLibrary,
    repo: Repo,
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
) -> BackgroundRow:
    """Receive a multipart upload, validate and store it, and record it in the database.

    Raises:
        QuotaExceeded: the library already holds its quota of items or bytes, or this file
            would pass it (HTTP 413).

    Nothing stays behind when any step fails: not the temporary file, not the stored file.
    """
    items, used = await asyncio.to_thread(_usage, repo)
    room = library.check_quota(items, used)
    cap, over = library.limits.max_bytes, None
    if room < cap:
        cap = room
        over = QuotaExceeded(
            f"this file would take the background library past its "
            f"{mib(library.limits.max_total_bytes)} quota ({mib(used)} stored); "
            "delete some first",
            field="file",
        )
    parsed = await receive_file(
        library, content_type, content_length, body, max_bytes=cap, over=over
    )
    try:
        name = parsed.fields.get("name") or parsed.filename
        item = await asyncio.to_thread(library.ingest, parsed.upload.path, name)
    except OSError as exc:
        if _out_of_space(exc):
            raise _out_of_space_error() from None
        raise
    finally:
        with contextlib.suppress(Exception):
            parsed.upload.discard()
    row = BackgroundRow(
        id=item.id,
        name=item.name,
        kind=item.kind,
        format=item.format,
        content_type=item.content_type,
        size_bytes=item.size_bytes,
        width=item.width,
        height=item.height,
        duration_s=item.duration_s,
        stored_name=item.stored_name,
        thumbnail_name=item.thumbnail_name,
    )
    try:
        await asyncio.to_thread(_admit, library, repo, row)
    except BaseException as exc:
        library.remove(item.stored_name, item.thumbnail_name)
        if _out_of_space(exc):
            raise _out_of_space_error() from None
        raise
    return row


def _out_of_space_error() -> InsufficientStorage:
    return InsufficientStorage(
        "the server is out of disk space for backgrounds; nothing was stored, try again later"
    )


def _out_of_space(exc: BaseException) -> bool:
    """A full disk, as the OS reports it (ENOSPC, EDQUOT) or as SQLite does ("database or
    disk is full", wrapped by SQLAlchemy)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "database or disk is full" in str(getattr(exc, "orig", exc))


def _usage(repo: Repo) -> tuple[int, int]:
    """Items and bytes the library holds (one API key: the whole library is its quota)."""
    rows = repo.list_backgrounds()
    return len(rows), sum(r.size_bytes for r in rows)


def _admit(library: BackgroundLibrary, repo: Repo, row: BackgroundRow) -> None:
    """Check the quota again and insert, under the lock: two uploads racing cannot both fit
    into the last slot."""
    with library.admission:
        items, used = _usage(repo)
        library.check_quota(items, used, row.size_bytes)
        repo.add_background(row)
