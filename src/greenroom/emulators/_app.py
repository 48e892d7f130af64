"""The FastAPI set-up both emulators share: one factory, one error type, one CORS rule.

:func:`vendor_app` gives an app with its :class:`~greenroom.emulators._sessions.SessionBook`
(closed at shutdown), the config and backend on ``app.state``, the test's injected faults
answered in the vendor's error shape, and CORS for the configured browser origins only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from greenroom.emulators._sessions import AvatarBackend, SessionBook
from greenroom.emulators.config import EmulatorConfig
from greenroom.errors import GreenroomError

#: Browser origins allowed when none are configured: pages served from this machine.
LOOPBACK_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"

ErrorBody = Callable[[int, str, int | str], dict[str, Any]]  # status, message, vendor code
Gate = Callable[[Request], Response | None]


class EmulatorError(GreenroomError):
    """An error answer from an emulated vendor: HTTP ``status`` and the vendor's own code
    (``vendor_code``, the status when the vendor sends none), rendered in its error shape."""

    def __init__(self, status: int, message: str, vendor_code: int | str | None = None):
        super().__init__(message, code="emulated_vendor_error", status=status)
        self.vendor_code: int | str = vendor_code if vendor_code is not None else status


def vendor_app(
    title: str,
    config: EmulatorConfig,
    backend: AvatarBackend | None,
    *,
    error_body: ErrorBody,
    gate: Gate | None = None,
) -> tuple[FastAPI, SessionBook]:
    """A FastAPI app for one emulated vendor, and its session book.

    Args:
        error_body: the vendor's JSON error shape for (status, message, vendor code).
        gate: answers a request before anything else when it returns a response (HeyGen's
            sunset mode); injected faults come next.
    """
    book = SessionBook()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await book.aclose()

    app = FastAPI(title=f"{title} (Greenroom)", lifespan=lifespan)
    app.state.config = config
    app.state.book = book
    app.state.backend = backend

    def answer(status: int, message: str, code: int | str | None) -> JSONResponse:
        return JSONResponse(error_body(status, message, code if code else status), status)

    @app.middleware("http")
    async def faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refused = gate(request) if gate is not None else None
        if refused is not None:
            return refused
        fault = config.take_fault(request.url.path)
        if fault is None:
            return await call_next(request)
        if fault.stall:  # serve it, then hold the answer (a client times out meanwhile)
            response = await call_next(request)
            await asyncio.sleep(fault.stall)
            return response
        return answer(fault.status, fault.message or "Injected failure", fault.code)

    @app.exception_handler(EmulatorError)
    async def on_error(_: Request, exc: EmulatorError) -> JSONResponse:
        return answer(exc.status, exc.message, exc.vendor_code)

    # the vendors' web SDKs call these APIs from browser pages; only configured origins may
    # (outermost, so that injected errors are readable there too)
    origins = config.cors_origins
    if origins is None:
        cors: dict[str, Any] = {"allow_origin_regex": LOOPBACK_ORIGINS, "allow_credentials": True}
    elif "*" in origins:  # any page, but never with credentials
        cors = {"allow_origins": ["*"], "allow_credentials": False}
    else:
        cors = {"allow_origins": list(origins), "allow_credentials": True}
    app.add_middleware(CORSMiddleware, allow_methods=["*"], allow_headers=["*"], **cors)
    return app, book


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") and len(auth) > 7 else None


def client_token(config: EmulatorConfig, room: str, identity: str) -> str:
    """A token for the end user of an emulator-hosted room: join, subscribe, publish, data."""
    from livekit import api

    assert config.livekit is not None
    grants = api.VideoGrants(
        room_join=True, room=room, can_subscribe=True, can_publish=True, can_publish_data=True
    )
    return (
        api.AccessToken(config.livekit.api_key, config.livekit.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )
