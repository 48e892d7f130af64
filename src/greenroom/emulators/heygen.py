"""A HeyGen Streaming API emulator (legacy ``/v1/streaming.*``, LiveKit ``v2``), backed by LocalAvatar.

Surface (as HeyGen and its official SDK use it; nothing added):

- ``POST /v1/streaming.create_token`` (``X-Api-Key``) -> ``{data: {token}}``.
- ``POST /v1/streaming.new`` -> ``{session_id, url, access_token, livekit_agent_token, is_paid,
  session_duration_limit}``: the emulator hosts a LiveKit room for the session.
- ``POST /v1/streaming.start`` -> the avatar joins that room (camera + microphone).
- ``POST /v1/streaming.task {session_id, text, task_type, task_mode}`` -> ``{duration_ms, task_id}``;
  the avatar speaks and sends ``avatar_start_talking``/``avatar_stop_talking`` data messages.
- ``.interrupt``, ``.keep_alive``, ``.stop``, ``.start_listening``, ``.stop_listening``,
  ``GET /v1/streaming.list``; the SDK's ``/v1/ws/streaming.chat`` WebSocket (text frames).

Auth: ``X-Api-Key`` or ``Authorization: Bearer <create_token token>``. Errors are
``{code, message}``: 10013 unknown avatar, 10003 deprecated avatar, 400006 wrong session state,
"Concurrent limit reached", 401, and 410 ``endpoint_sunset`` in sunset mode. Sessions end
after ``activity_idle_timeout`` (default 120 s) without activity and at the duration limit.
``talk`` tasks get the built-in avatar's deterministic reply (the emulator has no LLM).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from typing import Any, TypeVar

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from greenroom.avatars.heygen.models import NewSessionRequest, SessionIdRequest, TaskRequest
from greenroom.avatars.local.tts import talk_reply
from greenroom.emulators._app import EmulatorError, bearer_token, client_token, vendor_app
from greenroom.emulators._sessions import AvatarBackend, EmulatedAvatar, EmuSession, background
from greenroom.emulators.config import EmulatorConfig

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DEFAULT_IDLE_TIMEOUT_S = 120
DEFAULT_DURATION_LIMIT_S = 600
AVATAR_IDENTITY = "heygen-avatar"
WRONG_STATE = 400006


def _ok(data: Any = None) -> JSONResponse:
    return JSONResponse({"code": 100, "data": data, "message": "success"})


def _error_body(_status: int, message: str, code: int | str) -> dict[str, Any]:
    return {"code": code, "message": message}


def create_app(config: EmulatorConfig, backend: AvatarBackend | None = None) -> FastAPI:
    """The HeyGen Streaming API emulator as an ASGI app."""
    tokens: set[str] = set()

    def sunset(request: Request) -> JSONResponse | None:
        if config.sunset and request.url.path.startswith("/v1/streaming"):
            message = "endpoint_sunset: the Streaming API has been shut down"
            return JSONResponse(_error_body(410, message, 410), 410)
        return None

    app, book = vendor_app(
        "HeyGen Streaming API emulator", config, backend, error_body=_error_body, gate=sunset
    )

    def authorize(request: Request) -> None:
        bearer = bearer_token(request)
        if config.key_ok(request.headers.get("x-api-key")) or (bearer and bearer in tokens):
            return
        raise EmulatorError(401, "Unauthorized: invalid X-Api-Key or session token")

    async def body_as(request: Request, model: type[M]) -> M:
        try:
            raw = await request.json()
        except ValueError:
            raise EmulatorError(400, "request body is not valid JSON") from None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            raise EmulatorError(400, f"{where}: {first['msg']}") from None

    def live_session(session_id: str, *states: str) -> EmuSession:
        session = book.get(session_id)
        if session is None:
            raise EmulatorError(400, f"Session {session_id} not found", WRONG_STATE)
        if session.status not in states:
            raise EmulatorError(
                400, f"Session is not in correct state (it is {session.status})", WRONG_STATE
            )
        session.touch()
        return session

    @app.post("/v1/streaming.create_token")
    async def create_token(request: Request) -> JSONResponse:
        if not config.key_ok(request.headers.get("x-api-key")):
            raise EmulatorError(401, "Unauthorized: invalid X-Api-Key")
        token = secrets.token_urlsafe(32)
        tokens.add(token)
        return _ok({"token": token})

    @app.post("/v1/streaming.new")
    async def new(request: Request) -> JSONResponse:
        authorize(request)
        req: NewSessionRequest = await body_as(request, NewSessionRequest)
        if req.version != "v2":
            raise EmulatorError(400, "only version 'v2' (LiveKit) sessions are supported")
        avatar = req.avatar
        if not config.avatar_exists(avatar):
            raise EmulatorError(400, f"avatar not found: {avatar}", 10013)
        if avatar in config.deprecated_avatars:
            raise EmulatorError(400, f"avatar version is deprecated: {avatar}", 10003)
        if config.max_concurrent is not None:
            open_ = sum(1 for s in book.sessions.values() if s.live)
            if open_ >= config.max_concurrent:
                raise EmulatorError(400, "Concurrent limit reached")
        lk = config.livekit
        if lk is None:
            raise EmulatorError(500, "emulator has no LiveKit server configured")
        from greenroom.tokens import agent_token

        session = EmuSession(id=str(uuid.uuid4()), avatar_id=avatar)
        room = f"heygen-{session.id}"
        session.idle_timeout = (
            config.idle_timeout or req.activity_idle_timeout or (DEFAULT_IDLE_TIMEOUT_S)
        )
        session.max_duration = config.max_duration or DEFAULT_DURATION_LIMIT_S
        session.extra.update(room=room, request=req, tasks={})
        book.add(session)
        return _ok(
            {
                "session_id": session.id,
                "url": lk.url,
                "access_token": client_token(config, room, f"client-{session.id[:8]}"),
                "livekit_agent_token": agent_token(
                    lk.api_key, lk.api_secret, room=room, identity=f"agent-{session.id[:8]}"
                ),
                "is_paid": False,
                "session_duration_limit": int(session.max_duration),
            }
        )

    @app.post("/v1/streaming.start")
    async def start(request: Request) -> JSONResponse:
        authorize(request)
        body = await body_as(request, SessionIdRequest)
        session = live_session(body.session_id, "new")
        if app.state.backend is None:
            raise EmulatorError(500, "emulator has no avatar backend configured")
        lk = config.livekit
        assert lk is not None
        from greenroom.tokens import agent_token

        req: NewSessionRequest = session.extra["request"]
        session.status = "connecting"
        try:
            avatar = await app.state.backend.join(
                url=lk.url,
                token=agent_token(
                    lk.api_key, lk.api_secret, room=session.extra["room"], identity=AVATAR_IDENTITY
                ),
                avatar_id=session.avatar_id,
                voice=req.voice.voice_id if req.voice else None,
                identity=AVATAR_IDENTITY,
            )
        except Exception as exc:
            log.exception("emulated HeyGen start failed")
            await book.close(session, "start_failed")
            raise EmulatorError(500, f"avatar failed to start: {exc}") from exc
        if session.status == "closed":  # stopped while its avatar was joining: no revival
            with contextlib.suppress(Exception):
                await avatar.aclose()
            raise EmulatorError(400, "session was stopped while it was starting")
        session.avatar = avatar
        session.status = "connected"
        _wire_talking_events(session, avatar)
        book.watch(session, idle_reason="idle_timeout", max_reason="duration_limit")
        return _ok({"status": "success"})

    @app.post("/v1/streaming.task")
    async def task(request: Request) -> JSONResponse:
        authorize(request)
        body: TaskRequest = await body_as(request, TaskRequest)
        session = live_session(body.session_id, "connected")
        task_id = str(uuid.uuid4())
        session.extra["tasks"][task_id] = body.text
        text = body.text if body.task_type in (None, "repeat") else talk_reply(body.text)
        duration = await _speak(session, text, task_id)
        return _ok({"duration_ms": round(duration * 1000), "task_id": task_id})

    @app.post("/v1/streaming.interrupt")
    async def interrupt(request: Request) -> JSONResponse:
        authorize(request)
        body = await body_as(request, SessionIdRequest)
        session = live_session(body.session_id, "connected")
        assert session.avatar is not None
        await session.avatar.interrupt()
        return _ok()

    @app.post("/v1/streaming.keep_alive")
    async def keep_alive(request: Request) -> JSONResponse:
        authorize(request)
        body = await body_as(request, SessionIdRequest)
        live_session(body.session_id, "new", "connecting", "connected")
        return _ok()

    @app.post("/v1/streaming.start_listening")
    @app.post("/v1/streaming.stop_listening")
    async def listening(request: Request) -> JSONResponse:
        authorize(request)
        body = await body_as(request, SessionIdRequest)
        live_session(body.session_id, "connected")
        return _ok()

    @app.post("/v1/streaming.stop")
    async def stop(request: Request) -> JSONResponse:
        authorize(request)
        body = await body_as(request, SessionIdRequest)
        session = live_session(body.session_id, "new", "connecting", "connected")
        await book.close(session, "stopped")
        return _ok()

    @app.get("/v1/streaming.list")
    async def list_sessions(request: Request) -> JSONResponse:
        authorize(request)
        return _ok(
            {
                "sessions": [
                    {"session_id": s.id, "status": s.status, "created_at": int(s.created_at)}
                    for s in book.sessions.values()
                    if s.live
                ]
            }
        )

    @app.websocket("/v1/ws/streaming.chat")
    async def chat(ws: WebSocket) -> None:
        session = book.get(ws.query_params.get("session_id", ""))
        if session is None or ws.query_params.get("session_token") not in tokens:
            await ws.close(code=4401)
            return
        await ws.accept()
        try:
            while session.live:
                message = await ws.receive()
                if message.get("type") == "websocket.disconnect":
                    break
                data = message.get("bytes")
                text = _pipecat_text(data) if data else None
                if text and session.status == "connected":
                    session.touch()
                    await _speak(session, talk_reply(text), str(uuid.uuid4()))
        except WebSocketDisconnect:
            pass

    return app


async def _speak(session: EmuSession, text: str, task_id: str) -> float:
    avatar = session.avatar
    assert avatar is not None
    session.extra["current_task"] = task_id
    duration = await avatar.say(text)
    await _publish(session, {"type": "avatar_talking_message", "task_id": task_id, "message": text})
    await _publish(session, {"type": "avatar_end_message", "task_id": task_id})
    return duration


async def _publish(session: EmuSession, event: dict[str, Any]) -> None:
    if session.avatar is not None:
        with contextlib.suppress(Exception):
            await session.avatar.publish_data(json.dumps(event).encode())


def _wire_talking_events(session: EmuSession, avatar: EmulatedAvatar) -> None:
    loop = asyncio.get_running_loop()

    def on_speaking(speaking: bool) -> None:
        kind = "avatar_start_talking" if speaking else "avatar_stop_talking"
        event = {"type": kind, "task_id": session.extra.get("current_task")}
        loop.call_soon_threadsafe(background, _publish(session, event), loop)

    avatar.on_speaking(on_speaking)


def _pipecat_text(buf: bytes) -> str | None:
    """The text of a protobuf ``pipecat.Frame{text: TextFrame{text}}`` (field 1 -> field 3)."""
    inner = _field(buf, 1)
    if inner is None:
        return None
    text = _field(inner, 3)
    return text.decode("utf-8", "replace") if text is not None else None


def _field(buf: bytes, wanted: int) -> bytes | None:
    """The first length-delimited field ``wanted`` in a protobuf message (None if absent)."""
    i, n = 0, len(buf)
    try:
        while i < n:
            key, i = _varint(buf, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(buf, i)
            elif wire == 2:
                size, i = _varint(buf, i)
                if number == wanted:
                    return bytes(buf[i : i + size])
                i += size
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            else:
                return None
    except IndexError:
        return None
    return None


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
