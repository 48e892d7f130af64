"""A LiveAvatar emulator: ``/v1/sessions/*`` and the LITE-mode WebSocket, backed by LocalAvatar.

Surface (as the vendor documents it; nothing added):

- ``POST /v1/sessions/token`` (``X-API-KEY``) -> ``{code: 1000, data: {session_id, session_token}}``;
  422 on a bad body (LITE needs ``livekit_config``, FULL needs ``avatar_persona``).
- ``POST /v1/sessions/start`` (``Bearer session_token``) -> 201, ``{session_id, livekit_url,
  livekit_client_token, livekit_agent_token, max_session_duration, ws_url}``. LITE: the avatar
  joins *your* room with ``livekit_config``. FULL: the emulator hosts the room, the avatar joins
  as ``heygen`` and answers ``agent-control`` data messages on ``agent-response``.
- ``POST /v1/sessions/keep-alive``, ``POST /v1/sessions/stop {session_id, reason}``, ``GET /v1/sessions``.
- LITE WebSocket (the ``ws_url``): ``agent.speak{audio: base64 PCM16 24 kHz}``, ``agent.speak_end``,
  ``agent.interrupt``, ``agent.start_listening``/``stop_listening``, ``session.keep_alive``;
  sends ``session.state_updated{state}``, ``agent.speak_started|speak_ended|speak_interrupted``.

Sessions end after 5 minutes idle, at ``max_session_duration``, and after 60 s in sandbox.
Talk-style requests (``avatar.speak_response``) get the built-in avatar's deterministic reply
(the emulator has no LLM).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import jwt
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from greenroom.avatars.liveavatar.models import (
    SUCCESS_CODE,
    SessionIdRequest,
    StopReason,
    StopRequest,
    TokenRequest,
)
from greenroom.avatars.local.tts import talk_reply
from greenroom.emulators._app import EmulatorError, bearer_token, client_token, vendor_app
from greenroom.emulators._sessions import AvatarBackend, EmulatedAvatar, EmuSession, background
from greenroom.emulators.config import EmulatorConfig

if TYPE_CHECKING:
    from livekit import rtc

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

LITE_SAMPLE_RATE = 24_000
IDLE_TIMEOUT_S = 300.0
MAX_CHUNK_BYTES = 1_000_000
AVATAR_IDENTITY_FULL = "heygen"
AGENT_IDENTITY_PREFIX = "liveavatar-agent-"  # the web SDK waits for "<prefix><session_id>"
CONTROL_TOPIC = "agent-control"
RESPONSE_TOPIC = "agent-response"
STOPPED_FLUSH = 0.3  # s between sending session.stopped and the agent leaving the room


def _ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": SUCCESS_CODE, "data": data, "message": "success"}, status)


def _error_body(_status: int, message: str, code: int | str) -> dict[str, Any]:
    return {"code": code, "data": None, "message": message}


def create_app(config: EmulatorConfig, backend: AvatarBackend | None = None) -> FastAPI:
    """The LiveAvatar emulator as an ASGI app (serve it with uvicorn, or test via ASGITransport)."""
    by_token: dict[str, EmuSession] = {}
    signing_key = secrets.token_bytes(32)
    app, book = vendor_app("LiveAvatar emulator", config, backend, error_body=_error_body)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _plain_errors(exc.errors())}, 422)

    def api_key(request: Request) -> None:
        if not config.key_ok(request.headers.get("x-api-key")):
            raise EmulatorError(401, "Invalid or missing API key (X-API-KEY)")

    def session_for(request: Request, session_id: str | None) -> EmuSession:
        token = bearer_token(request)
        session = by_token.get(token) if token else None
        if session is None:
            raise EmulatorError(401, "Invalid or missing session token (Authorization: Bearer)")
        if session_id is not None and session_id != session.id:
            raise EmulatorError(401, f"the session token does not belong to session {session_id}")
        return session

    async def body_as(request: Request, model: type[M]) -> M:
        try:
            raw = await request.json() if await request.body() else {}
        except ValueError:
            raise RequestValidationError(
                [{"loc": ("body",), "msg": "body is not valid JSON", "type": "json_invalid"}]
            ) from None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from None

    @app.post("/v1/sessions/token")
    async def create_token(request: Request) -> JSONResponse:
        api_key(request)
        req: TokenRequest = await body_as(request, TokenRequest)
        if req.mode == "LITE" and req.livekit_config is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "livekit_config"),
                        "msg": "Field required for LITE mode",
                        "type": "missing",
                    }
                ]
            )
        if req.mode == "FULL" and req.avatar_persona is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "avatar_persona"),
                        "msg": "Field required for FULL mode",
                        "type": "missing",
                    }
                ]
            )
        if not config.avatar_exists(req.avatar_id):
            raise EmulatorError(404, f"Avatar {req.avatar_id} not found")
        session = EmuSession(id=str(uuid.uuid4()), avatar_id=req.avatar_id)
        token = _session_jwt(session, req, signing_key)
        session.extra.update(token=token, request=req)
        by_token[token] = session
        session.idle_timeout = config.idle_timeout or IDLE_TIMEOUT_S
        limits = [
            x
            for x in (
                req.max_session_duration,
                config.max_duration,
                config.sandbox_duration if req.is_sandbox else None,
            )
            if x
        ]
        session.max_duration = min(limits) if limits else None
        book.add(session)
        return _ok({"session_id": session.id, "session_token": session.extra["token"]})

    @app.post("/v1/sessions/start", status_code=201)
    async def start(request: Request) -> JSONResponse:
        body: SessionIdRequest = await body_as(request, SessionIdRequest)
        session = session_for(request, body.session_id)
        if session.status != "new":
            raise EmulatorError(400, f"Session is not in correct state ({session.status})")
        if config.max_concurrent is not None and book.live_count() >= config.max_concurrent:
            raise EmulatorError(400, "Concurrent limit reached: too many active sessions")
        if app.state.backend is None:
            raise EmulatorError(500, "emulator has no avatar backend configured")
        req: TokenRequest = session.extra["request"]
        session.status = "connecting"
        try:
            data = await (_start_lite if req.mode == "LITE" else _start_full)(
                app, session, req, request
            )
        except EmulatorError:
            await book.close(session, StopReason.SERVER_ERROR)
            raise
        except Exception as exc:
            log.exception("emulated LiveAvatar start failed")
            await book.close(session, StopReason.SERVER_ERROR)
            raise EmulatorError(500, f"avatar failed to start: {exc}") from exc
        session.started_at = session.created_at
        session.touch()
        book.watch(
            session,
            idle_reason=StopReason.IDLE_TIMEOUT,
            max_reason=StopReason.MAX_DURATION_REACHED,
        )
        return _ok(data, 201)

    @app.post("/v1/sessions/keep-alive")
    async def keep_alive(request: Request) -> JSONResponse:
        body: SessionIdRequest = await body_as(request, SessionIdRequest)
        session = session_for(request, body.session_id)
        if not session.live:
            raise EmulatorError(400, "Session is not in correct state (closed)")
        session.touch()
        return _ok(None)

    @app.post("/v1/sessions/stop")
    async def stop(request: Request) -> JSONResponse:
        body: StopRequest = await body_as(request, StopRequest)
        session = session_for(request, body.session_id)
        await book.close(session, body.reason.value)
        return _ok(None)

    @app.get("/v1/sessions")
    async def list_sessions(request: Request) -> JSONResponse:
        api_key(request)
        return _ok(
            {
                "sessions": [
                    {
                        "session_id": s.id,
                        "avatar_id": s.avatar_id,
                        "status": s.status,
                        "mode": s.extra["request"].mode,
                        "created_at": int(s.created_at),
                        "stop_reason": s.stop_reason,
                    }
                    for s in book.sessions.values()
                ]
            }
        )

    @app.websocket("/v1/sessions/{session_id}/ws")
    async def lite_ws(ws: WebSocket, session_id: str) -> None:
        session = book.get(session_id)
        if session is None or ws.query_params.get("token") != session.secret or not session.live:
            await ws.close(code=4401)
            return
        await ws.accept()
        await _serve_lite_ws(ws, session)

    return app


def _session_jwt(session: EmuSession, req: TokenRequest, key: bytes) -> str:
    """A session token shaped like LiveAvatar's: a JWT whose payload carries the session's
    ``start_session_data`` (the web SDK reads ``mode`` from it). Our LiveKit token stays out."""
    data = req.model_dump(mode="json", exclude_none=True, exclude={"livekit_config"})
    now = int(time.time())
    claims = {"session_id": session.id, "start_session_data": data, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, key, algorithm="HS256")


def _plain_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
    ]


def _ws_base(app: FastAPI, request: Request) -> str:
    base = app.state.config.public_url or str(request.base_url)
    base = base.rstrip("/")
    return "ws" + base[4:] if base.startswith("http") else base


async def _start_lite(
    app: FastAPI, session: EmuSession, req: TokenRequest, request: Request
) -> dict[str, Any]:
    lk = req.livekit_config
    assert lk is not None
    avatar = await app.state.backend.join(
        url=lk.livekit_url,
        token=lk.livekit_client_token,
        avatar_id=req.avatar_id,
        voice=None,
        identity="",
    )
    if session.status == "closed":  # stopped while its avatar was joining: no revival
        with contextlib.suppress(Exception):
            await avatar.aclose()
        raise EmulatorError(400, "session was stopped while it was starting")
    session.avatar = avatar
    session.status = "connected"
    session.extra["ws"] = set()
    return {
        "session_id": session.id,
        "livekit_url": lk.livekit_url,
        "livekit_client_token": None,
        "livekit_agent_token": None,
        "max_session_duration": int(session.max_duration) if session.max_duration else None,
        "ws_url": f"{_ws_base(app, request)}/v1/sessions/{session.id}/ws?token={session.secret}",
    }


async def _start_full(
    app: FastAPI, session: EmuSession, req: TokenRequest, request: Request
) -> dict[str, Any]:
    cfg: EmulatorConfig = app.state.config
    if cfg.livekit is None:
        raise EmulatorError(500, "emulator has no LiveKit server configured for FULL mode")
    from greenroom.tokens import agent_token

    room = f"liveavatar-{session.id}"
    avatar_token = agent_token(
        cfg.livekit.api_key, cfg.livekit.api_secret, room=room, identity=AVATAR_IDENTITY_FULL
    )
    persona = req.avatar_persona
    avatar = await app.state.backend.join(
        url=cfg.livekit.url,
        token=avatar_token,
        avatar_id=req.avatar_id,
        voice=persona.voice_id if persona else None,
        identity=AVATAR_IDENTITY_FULL,
    )
    session.avatar = avatar
    # LiveAvatar's own agent: a data-only participant that takes ``agent-control`` commands
    # and answers on ``agent-response`` (the web SDK waits for it and for "heygen")
    from livekit import rtc

    agent_room = rtc.Room()
    await agent_room.connect(
        cfg.livekit.url,
        agent_token(
            cfg.livekit.api_key,
            cfg.livekit.api_secret,
            room=room,
            identity=f"{AGENT_IDENTITY_PREFIX}{session.id}",
        ),
        rtc.RoomOptions(auto_subscribe=False),
    )
    session.status = "connected"
    _wire_full_events(session, avatar, agent_room)
    client = client_token(cfg, room, "client")
    agent = agent_token(cfg.livekit.api_key, cfg.livekit.api_secret, room=room, identity="agent")
    return {
        "session_id": session.id,
        "livekit_url": cfg.livekit.url,
        "livekit_client_token": client,
        "livekit_agent_token": agent,
        "max_session_duration": int(session.max_duration) if session.max_duration else None,
        "ws_url": None,
    }


def _wire_full_events(session: EmuSession, avatar: EmulatedAvatar, agent_room: rtc.Room) -> None:
    """FULL mode: ``agent-control`` commands in, ``agent-response`` events out (the agent)."""
    loop = asyncio.get_running_loop()
    current: dict[str, str | None] = {"event_id": None}

    async def send(event_type: str, **fields: Any) -> None:
        payload = {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "session_id": session.id,
            **fields,
        }
        with contextlib.suppress(Exception):
            await agent_room.local_participant.publish_data(
                json.dumps(payload).encode(), reliable=True, topic=RESPONSE_TOPIC
            )

    def on_speaking(speaking: bool) -> None:
        name = "avatar.speak_started" if speaking else "avatar.speak_ended"
        loop.call_soon_threadsafe(background, send(name, source_event_id=current["event_id"]), loop)

    async def handle(cmd: dict[str, Any]) -> None:
        kind = cmd.get("event_type")
        session.touch()
        if kind in ("avatar.speak_text", "avatar.speak_response"):
            text = cmd.get("text")
            if not isinstance(text, str) or not text.strip():
                return
            current["event_id"] = cmd.get("event_id")
            if kind == "avatar.speak_response":
                text = talk_reply(text)
            await avatar.say(text)
            await send("avatar.transcription", text=text, source_event_id=cmd.get("event_id"))
        elif kind == "avatar.interrupt":
            await avatar.interrupt()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic != CONTROL_TOPIC:
            return
        try:
            cmd = json.loads(bytes(packet.data))
        except ValueError:
            return
        if isinstance(cmd, dict):
            loop.call_soon_threadsafe(background, handle(cmd), loop)

    async def on_closed(reason: str) -> None:
        await send("session.stopped", reason=reason)
        await asyncio.sleep(STOPPED_FLUSH)  # leaving at once can drop the event unsent
        with contextlib.suppress(Exception):
            await agent_room.disconnect()

    avatar.on_speaking(on_speaking)
    agent_room.on("data_received", on_data)
    session.on_close.append(on_closed)


async def _serve_lite_ws(ws: WebSocket, session: EmuSession) -> None:
    avatar = session.avatar
    assert avatar is not None
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    # the task being received, and tasks complete on the socket (speak_end) still playing
    turn: dict[str, Any] = {"task": None, "interrupted": False}
    playing: list[str] = []

    def emit(event_type: str, **fields: Any) -> None:
        out.put_nowait({"type": event_type, "event_id": str(uuid.uuid4()), **fields})

    def on_speaking(speaking: bool) -> None:
        if speaking:
            first = playing[0] if playing else turn["task"]
            emit("agent.speak_started", task={"id": first} if first else None)
        elif not turn["interrupted"]:
            for task_id in playing:
                emit("agent.speak_ended", task={"id": task_id})
            playing.clear()

    async def on_closed(reason: str) -> None:
        emit("session.state_updated", state="closed", reason=reason)
        out.put_nowait(None)

    avatar.on_speaking(on_speaking)
    session.on_close.append(on_closed)

    async def sender() -> None:
        while (msg := await out.get()) is not None:
            await ws.send_json(msg)
        with contextlib.suppress(Exception):
            await ws.close()

    send_task = loop.create_task(sender())
    emit("session.state_updated", state="connected")
    try:
        while session.live:
            try:
                raw = await ws.receive_text()
            except WebSocketDisconnect:
                break
            session.touch()
            try:
                msg = json.loads(raw)
                kind = msg["type"]
            except (ValueError, KeyError, TypeError):
                emit("error", error={"message": "message must be JSON with a 'type'"})
                continue
            if kind == "agent.speak":
                try:
                    pcm = base64.b64decode(msg.get("audio") or "", validate=True)
                except (binascii.Error, TypeError):
                    emit("error", error={"message": "agent.speak audio must be base64 PCM16"})
                    continue
                if len(pcm) > MAX_CHUNK_BYTES or len(pcm) % 2:
                    emit("error", error={"message": "agent.speak audio must be <= 1 MB PCM16"})
                    continue
                if turn["task"] is None:
                    turn.update(task=str(uuid.uuid4()), interrupted=False)
                await avatar.push_pcm(pcm, LITE_SAMPLE_RATE)
            elif kind == "agent.speak_end":
                await avatar.end_pcm()
                if turn["task"] is not None:
                    playing.append(turn["task"])
                turn["task"] = None
            elif kind == "agent.interrupt":
                turn["interrupted"] = True
                cut = [*playing, *([turn["task"]] if turn["task"] else [])]
                playing.clear()
                turn["task"] = None
                await avatar.interrupt()
                emit("agent.speak_interrupted", task={"id": cut[0]} if cut else None)
            elif kind in (
                "session.keep_alive",
                "agent.start_listening",
                "agent.stop_listening",
                "start",
            ):
                pass
            else:
                emit("error", error={"message": f"unknown event type {kind!r}"})
    finally:
        with contextlib.suppress(ValueError):
            session.on_close.remove(on_closed)
        out.put_nowait(None)
        with contextlib.suppress(Exception):
            await send_task
