"""Streaming sessions: start from a template, speak, switch background, snapshot, stop."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from greenroom.api.deps import Authorized, ServicesDep
from greenroom.api.errors import error_response
from greenroom.api.schemas import (
    ActionResult,
    BackgroundChange,
    ErrorResponse,
    SessionCreate,
    SessionList,
    SessionPublic,
    SessionStarted,
    SpeakRequest,
)
from greenroom.api.services.limits import TooManySessions
from greenroom.api.services.sessions import StartRequest

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown session or template"},
    409: {"model": ErrorResponse, "description": "The session is not running"},
    422: {"model": ErrorResponse, "description": "Invalid field"},
}

router = APIRouter(
    prefix="/v2/streaming/sessions", tags=["sessions"], dependencies=Authorized, responses=ERRORS
)


@router.post(
    "",
    response_model=SessionStarted,
    responses={
        502: {"model": ErrorResponse, "description": "The avatar vendor failed"},
        429: {
            "model": ErrorResponse,
            "description": "Too many sessions at once (per process or per API key); "
            "`Retry-After` says when to try again",
        },
        503: {"model": ErrorResponse, "description": "The session could not start"},
    },
)
async def start_session(
    body: SessionCreate, services: ServicesDep, request: Request
) -> SessionStarted | Response:
    """Start an avatar with a composited background; returns a viewer token and page."""
    try:
        started = await services.sessions.start(
            StartRequest(**body.model_dump(), caller=_caller(request))
        )
    except TooManySessions as exc:
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.code, exc.message, headers=headers)
    row = started.row
    return SessionStarted(
        session_id=row.id,
        status="started",
        stream_url=started.livekit_url,
        livekit_url=started.livekit_url,
        access_token=started.access_token,
        access_token_expires_at=started.access_token_expires_at,
        viewer_url=started.viewer_url,
        room=row.room,
        viewer_identity=row.viewer_identity,
        avatar_identity=row.avatar_identity or "",
        compositor_identity=row.compositor_identity or "",
        background=row.background,
        idle_timeout=row.idle_timeout,
        max_duration=row.max_duration,
        warnings=started.warnings,
    )


def _caller(request: Request) -> str:
    """Which API key asks (a digest of it: the key itself is never kept)."""
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    key = key or request.headers.get("x-api-key", "")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@router.get("")
async def list_sessions(
    services: ServicesDep,
    status: Literal["starting", "started", "stopped", "failed"] | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> SessionList:
    """Sessions, newest first."""
    return SessionList(
        sessions=[
            SessionPublic.model_validate(v)
            for v in await services.sessions.list(status=status, limit=limit)
        ]
    )


@router.get("/{session_id}")
async def get_session(session_id: str, services: ServicesDep) -> SessionPublic:
    """Status, why it ended, time left, template, background in use, live metrics."""
    return SessionPublic.model_validate(await services.sessions.get(session_id))


@router.post("/{session_id}/speak")
async def speak(session_id: str, body: SpeakRequest, services: ServicesDep) -> ActionResult:
    """Queue text: `repeat` says it verbatim, `talk` lets the provider answer it."""
    await services.sessions.speak(session_id, body.text, body.task_type)
    return ActionResult(session_id=session_id, status="queued")


@router.post("/{session_id}/interrupt")
async def interrupt(session_id: str, services: ServicesDep) -> ActionResult:
    """Stop speaking now and drop queued text."""
    await services.sessions.interrupt(session_id)
    return ActionResult(session_id=session_id, status="interrupted")


@router.post("/{session_id}/keep_alive")
async def keep_alive(session_id: str, services: ServicesDep) -> ActionResult:
    """Reset the idle timer (`idle_timeout`); `max_duration` still applies."""
    await services.sessions.keep_alive(session_id)
    return ActionResult(session_id=session_id, status="alive")


@router.put("/{session_id}/background")
async def set_background(
    session_id: str, body: BackgroundChange, services: ServicesDep
) -> SessionPublic:
    """Switch the background live, with a crossfade (same values as the LiveKit RPC)."""
    background = body.background
    value = background if isinstance(background, str) else background.model_dump(exclude_none=True)
    view = await services.sessions.set_background(session_id, value, body.transition)
    return SessionPublic.model_validate(view)


@router.get(
    "/{session_id}/snapshot.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The latest composited frame"}},
)
async def snapshot(session_id: str, services: ServicesDep) -> Response:
    """The latest composited frame as PNG: what viewers see."""
    png = await services.sessions.snapshot(session_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.delete("/{session_id}")
async def stop_session(session_id: str, services: ServicesDep) -> SessionPublic:
    """Stop avatar and compositor; delete the room if Greenroom created it."""
    view = await services.sessions.stop(session_id, reason="stopped_by_user")
    return SessionPublic.model_validate(view)
