"""A cap on request bodies, so no JSON body can make the service buffer gigabytes.

Uploads to the background library (``POST /v1/backgrounds`` and the viewer's
``POST /viewer/{id}/api/backgrounds``) have their own, larger cap, streamed to disk; every
other route, the viewer's included, is held to this one. A declared ``Content-Length`` over
the cap is refused at once; a body without one is read up to the cap (at most 1 MiB in
memory) and refused when it goes over.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from greenroom.api.errors import error_response

DEFAULT_MAX_BODY = 1024 * 1024


_VIEWER_UPLOAD = re.compile(r"/viewer/[^/]+/api/backgrounds")


def default_exempt(scope: Scope) -> bool:
    """The two upload routes, which stream into the library under its own byte cap."""
    if scope.get("method") != "POST":
        return False
    path: str = scope.get("path", "")
    return path == "/v1/backgrounds" or _VIEWER_UPLOAD.fullmatch(path) is not None


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY,
        exempt: Callable[[Scope], bool] = default_exempt,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        message = f"request bodies are limited to {self.max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    response = error_response(413, "payload_too_large", message)
                    await response(scope, receive, send)
                    return
        # Read the (small) body here, up to the cap, then hand it on in one piece.
        body = bytearray()
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away
            body += msg.get("body", b"")
            more = bool(msg.get("more_body", False))
            if len(body) > self.max_bytes:
                await error_response(413, "payload_too_large", message)(scope, receive, send)
                return
        handed = False

        async def replay() -> Message:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
