"""One error shape for every failure: ``{"error": {"code", "message", "field"}}``.

Greenroom's own errors carry their status; FastAPI's validation errors become 422 naming the
first bad field; Starlette's HTTP errors (unknown route, wrong method) keep their status.
A database that cannot be reached or stays locked is ``503 database_unavailable`` with
``Retry-After``, on any route; the SQL statement stays in the server log. Anything else is a 500 whose message says nothing about the internals (it is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from greenroom.errors import GreenroomError
from greenroom.store.errors import DatabaseUnavailable, is_unavailable
from greenroom.store.errors import reason as db_reason

log = logging.getLogger("greenroom.api")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if extra:
        body.update(extra)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _loc_to_field(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    # Union members show up as type names in the location (e.g. "str", "BackgroundObject").
    parts = [p for p in parts if not (p[:1].isupper() or p in {"str", "int", "float", "bool"})]
    return ".".join(parts) or None


def _describe(err: dict[str, Any]) -> str:
    field = _loc_to_field(err.get("loc", ()))
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing":
        return f"{field} is required" if field else "a required value is missing"
    if err.get("type") == "extra_forbidden":
        return f"{field} is not a known field"
    if err.get("type") == "json_invalid":
        return f"the body is not valid JSON: {err.get('ctx', {}).get('error', msg)}"
    return f"{field}: {msg}" if field else msg


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(GreenroomError)
    async def _greenroom(_: Request, exc: GreenroomError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request failed: %s (%s)", exc.message, exc.code)
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return error_response(
            exc.status, exc.code, exc.message, getattr(exc, "field", None), headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        details = [
            {"field": _loc_to_field(e.get("loc", ())), "message": _describe(e)} for e in errors
        ]
        return error_response(
            422,
            "invalid_input",
            _describe(first),
            _loc_to_field(first.get("loc", ())),
            extra={"details": details[:20]},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; see /docs for the API"
        return error_response(
            exc.status_code, code, message, headers=dict(exc.headers) if exc.headers else None
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the server log has details")

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not is_unavailable(exc):
            return await _unexpected(request, exc)
        log.error(
            "database unavailable on %s %s: %s", request.method, request.url.path, db_reason(exc)
        )
        err = DatabaseUnavailable()
        return error_response(
            err.status, err.code, err.message, headers={"Retry-After": str(err.retry_after)}
        )
