"""The viewer pages and their small, token-authenticated API.

Pages (HTML, no secrets in them):

- ``GET /``: the sessions list and a form to start one from a template (uses the JSON API);
- ``GET /viewer/{session_id}``: the viewer. Its link carries the session's subscribe-only
  LiveKit token and the LiveKit URL in the fragment (``#token=...&url=...``), which browsers
  never send to a server, so tokens stay out of access logs.

The viewer's own endpoints under ``/viewer/{session_id}/api/`` take that same token as
``Authorization: Bearer <token>``. It is verified with the LiveKit API secret
(:class:`livekit.api.TokenVerifier`) and must be for the session's room, so a viewer link
grants exactly: watch, switch the background (LiveKit RPC to the compositor), add to the
background library, and make the avatar speak or stop speaking (and, in the demo, start a
new session once this one has ended). Nothing else.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec

import jwt
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from livekit import api
from pydantic import BaseModel, Field, ValidationError

from greenroom.config import Settings, get_settings
from greenroom.errors import (
    Conflict,
    Forbidden,
    GreenroomError,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from greenroom.tokens import viewer_token
from greenroom.web.backend import ViewerBackend, ViewerSession

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
BUNDLE = STATIC / "build"
MAX_TEXT = 2000
_ASSET_TYPES = {".css": "text/css", ".js": "text/javascript", ".map": "application/json"}
# The viewer holds a token: no third-party script, no framing. LiveKit is reached over ws(s)
# on its own host and port, and its client may call the server's HTTP validate endpoint.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss: http: https:; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


class SpeakBody(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    mode: Literal["repeat", "talk"] = "repeat"


P = ParamSpec("P")


def _answers_errors(fn: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
    """Turn GreenroomError into the API's error shape, whatever app the router is in."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return await fn(*args, **kwargs)
        except GreenroomError as exc:
            return error_response(exc)

    return wrapper


def error_response(exc: GreenroomError) -> JSONResponse:
    field = getattr(exc, "field", None)
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message, "field": field}},
        status_code=exc.status,
    )


# ---- pages -----------------------------------------------------------------------------------


def _page(name: str) -> Response:
    if not (BUNDLE / f"{Path(name).stem}.js").is_file():
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>Greenroom</title>"
            "<h1>The viewer is not built</h1><p>Run <code>make setup</code> (it runs "
            "<code>npm ci</code> and <code>node build.mjs</code> in "
            "<code>src/greenroom/web</code>), then reload.</p>",
            status_code=503,
            headers=_PAGE_HEADERS,
        )
    return FileResponse(STATIC / name, media_type="text/html", headers=_PAGE_HEADERS)


@router.get("/", response_class=HTMLResponse)
async def home_page() -> Response:
    """Sessions list and start-from-template form."""
    return _page("home.html")


@router.get("/viewer/{session_id}", response_class=HTMLResponse)
async def viewer_page(session_id: str) -> Response:
    """The viewer; it validates the session and token itself and explains any problem."""
    return _page("viewer.html")


@router.get("/web/{path:path}")
async def asset(path: str) -> Response:
    """Stylesheet and the esbuild bundle (only files under static/, never above it)."""
    target = (STATIC / path).resolve()
    if (
        not target.is_relative_to(STATIC.resolve())
        or target.suffix not in _ASSET_TYPES
        or not target.is_file()
    ):
        return error_response(NotFound(f"no asset {path!r}"))
    return FileResponse(
        target, media_type=_ASSET_TYPES[target.suffix], headers={"Cache-Control": "no-cache"}
    )


# ---- token-authenticated viewer API --------------------------------------------------------


def _settings(request: Request) -> Settings:
    services = getattr(request.app.state, "services", None)
    settings = getattr(services, "settings", None) or getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def get_backend(request: Request) -> ViewerBackend:
    """The app's viewer backend: set explicitly, or the default over the API's services."""
    backend = getattr(request.app.state, "viewer_backend", None)
    if backend is None:
        from greenroom.web.api_backend import ApiBackend

        backend = ApiBackend.from_app(request.app)
        request.app.state.viewer_backend = backend
    return backend


def verify_viewer_token(settings: Settings, authorization: str | None) -> api.Claims:
    """Verify a LiveKit token from ``Authorization: Bearer ...``.

    Raises:
        Unauthorized: missing, malformed, badly signed or expired token.
    """
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("send the viewer token as 'Authorization: Bearer <token>'")
    token = authorization[7:].strip()
    verifier = api.TokenVerifier(
        settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
    )
    try:
        return verifier.verify(token)
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "the viewer link has expired; ask the API for the session again to get a fresh one"
        ) from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthorized("the viewer token is not valid for this server") from None


async def _authorize(
    request: Request, session_id: str, authorization: str | None
) -> tuple[ViewerBackend, ViewerSession]:
    claims = verify_viewer_token(_settings(request), authorization)
    backend = get_backend(request)
    session = await backend.session(session_id)
    video = claims.video
    if video is None or not video.room_join or video.room != session.room:
        raise Forbidden("this viewer token is for another session")
    return backend, session


AuthHeader = Annotated[str | None, Header()]


@router.get("/viewer/{session_id}/api/session")
@_answers_errors
async def viewer_session(
    request: Request, session_id: str, authorization: AuthHeader = None
) -> Any:
    """Status, end reason, identities, background and compositor metrics."""
    _, session = await _authorize(request, session_id, authorization)
    return session.to_json()


@router.get("/viewer/{session_id}/api/backgrounds")
@_answers_errors
async def viewer_backgrounds(
    request: Request, session_id: str, authorization: AuthHeader = None
) -> Any:
    """The background library, each with the spec to send to the compositor."""
    backend, _ = await _authorize(request, session_id, authorization)
    return [b.to_json(session_id) for b in await backend.backgrounds()]


@router.get("/viewer/{session_id}/api/backgrounds/{background_id}/thumbnail")
@_answers_errors
async def viewer_thumbnail(
    request: Request, session_id: str, background_id: str, authorization: AuthHeader = None
) -> Any:
    backend, _ = await _authorize(request, session_id, authorization)
    for b in await backend.backgrounds():
        if b.id == background_id and b.thumbnail and b.thumbnail.is_file():
            return FileResponse(b.thumbnail, media_type="image/jpeg")
    raise NotFound(f"no thumbnail for background {background_id!r}")


@router.post("/viewer/{session_id}/api/backgrounds", status_code=201)
@_answers_errors
async def viewer_upload(request: Request, session_id: str, authorization: AuthHeader = None) -> Any:
    """Add an image or video (multipart part ``file``) to the library; streamed with a cap."""
    backend, session = await _authorize(request, session_id, authorization)
    if session.status not in ("started", "starting"):  # a stopped session's link adds nothing
        raise Conflict(f"the session has {session.status}; it cannot add backgrounds any more")
    item = await backend.upload_background(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
    )
    return JSONResponse(item.to_json(session_id), status_code=201)


@router.post("/viewer/{session_id}/api/speak", status_code=202)
@_answers_errors
async def viewer_speak(request: Request, session_id: str, authorization: AuthHeader = None) -> Any:
    """Queue text for the avatar (``repeat`` says it as is; ``talk`` lets the provider answer)."""
    backend, session = await _authorize(request, session_id, authorization)
    try:
        body = SpeakBody.model_validate(await request.json())
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidInput(f"{field}: {err['msg']}", field=field) from None
    except ValueError:
        raise InvalidInput("body must be JSON: {'text': ..., 'mode': ...}", field="body") from None
    if not body.text.strip():
        raise InvalidInput("text: must not be blank", field="text")
    _require_live(session)
    await backend.speak(session_id, body.text, body.mode)
    return JSONResponse({"status": "queued"}, status_code=202)


@router.post("/viewer/{session_id}/api/interrupt")
@_answers_errors
async def viewer_interrupt(
    request: Request, session_id: str, authorization: AuthHeader = None
) -> Any:
    """Stop what the avatar is saying now."""
    backend, session = await _authorize(request, session_id, authorization)
    _require_live(session)
    await backend.interrupt(session_id)
    return {"status": "interrupted"}


@router.post("/viewer/{session_id}/api/restart", status_code=201)
@_answers_errors
async def viewer_restart(
    request: Request, session_id: str, authorization: AuthHeader = None
) -> Any:
    """Start a new session from the same template (only where the page offers it: the demo);
    answers the new session's viewer link."""
    backend, _ = await _authorize(request, session_id, authorization)
    return JSONResponse({"viewer_url": await backend.restart(session_id)}, status_code=201)


@router.post("/viewer/{session_id}/api/link")
@_answers_errors
async def viewer_link(
    request: Request,
    session_id: str,
    authorization: AuthHeader = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Any:
    """A fresh viewer link for a running session (needs the API key, as the JSON API does).

    Each link gets its own viewer identity, so two open viewers never displace each other.
    """
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise NotFound("viewer links need the Greenroom API")
    given = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), services.api_key.encode()):
        raise Unauthorized("send the API key as 'Authorization: Bearer <key>' or 'X-Api-Key'")
    session = await get_backend(request).session(session_id)
    _require_live(session)
    settings = services.settings
    identity = f"viewer-{session_id[4:16]}-{secrets.token_hex(3)}"
    token = viewer_token(
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        room=session.room,
        identity=identity,
    )
    return {"viewer_url": services.sessions.viewer_url(session_id, token), "identity": identity}


def _require_live(session: ViewerSession) -> None:
    if session.status not in ("started", "starting"):
        raise Conflict(f"the session has {session.status}; it cannot speak any more")
