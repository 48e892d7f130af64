"""Streaming sessions: an avatar and a compositor in a LiveKit room, started from a template.

``SessionManager`` owns the running sessions of this process. The database row is the record
users see; the in-memory :class:`LiveSession` holds the avatar and compositor objects. Every
state change is written to the row, so what ``GET`` reports stays true across restarts:
:meth:`SessionManager.reconcile` marks sessions this process does not run as stopped
(``service_restarted``) and deletes the rooms Greenroom created for them.

A session stops itself after ``idle_timeout`` seconds with no speak, interrupt, keep-alive or
background change and no speech in progress (``stop_reason="idle_timeout"``), and when its
avatar stops on its own (``avatar_stopped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from greenroom import tokens
from greenroom.api.metrics import Metrics
from greenroom.api.services import background_values, pipeline
from greenroom.api.services.rooms import Rooms
from greenroom.backgrounds.library import BackgroundLibrary
from greenroom.config import Settings
from greenroom.errors import Conflict, GreenroomError, InvalidInput, ProviderError
from greenroom.store import Repo
from greenroom.store.models import SessionRow
from greenroom.store.repo import OPEN_STATUSES, new_id

log = logging.getLogger("greenroom.sessions")

FIRST_FRAME_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0  # seconds an avatar or compositor gets to leave the room


class StartFailed(GreenroomError):
    code = "session_start_failed"
    status = 503


@dataclass
class StartRequest:
    template_id: str
    voice_id: str | None = None
    text: str | None = None
    livekit_room: str | None = None
    livekit_identity: str | None = None


@dataclass
class StartedSession:
    row: SessionRow
    livekit_url: str
    access_token: str
    access_token_expires_at: datetime
    viewer_url: str


@dataclass
class LiveSession:
    """A session this process runs."""

    id: str
    room: str
    room_created: bool
    avatar: Any
    compositor: Any
    idle_timeout: float
    started_mono: float
    last_activity: float
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    stopping: bool = False

    def touch(self) -> None:
        self.last_activity = time.monotonic()


def _now() -> datetime:
    return datetime.now(UTC)


def _hex(rgb: Any) -> str | None:
    if rgb is None:
        return None
    if isinstance(rgb, str):
        return rgb
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


class SessionManager:
    """Starts, drives and stops the sessions of this process."""

    def __init__(
        self,
        settings: Settings,
        repo: Repo,
        library: BackgroundLibrary,
        metrics: Metrics,
        *,
        public_base_url: str,
    ):
        self.settings = settings
        self.repo = repo
        self.library = library
        self.metrics = metrics
        self.public_base_url = public_base_url.rstrip("/")
        self.rooms = Rooms(settings)
        self.live: dict[str, LiveSession] = {}
        self._closing = False

    # lifecycle ---------------------------------------------------------------------------
    async def reconcile(self) -> list[str]:
        """Mark sessions the database thinks are running, but this process does not run, as
        stopped (``service_restarted``) and delete the rooms Greenroom created for them."""
        fixed = []
        for row in self.repo.open_sessions():
            if row.id in self.live:
                continue
            if row.room_created:
                try:
                    await self.rooms.delete(row.room)
                except Exception as exc:  # LiveKit down: the row is still corrected
                    log.warning("could not delete room %s of %s: %s", row.room, row.id, exc)
            self.repo.update_session(
                row.id, status="stopped", stop_reason="service_restarted", stopped_at=_now()
            )
            self.metrics.sessions_stopped.labels("service_restarted").inc()
            log.info(
                "session %s marked stopped: service_restarted",
                row.id,
                extra={"session": row.id, "event": "stopped", "reason": "service_restarted"},
            )
            fixed.append(row.id)
        return fixed

    async def warm_up(self) -> None:
        """Load the frame kernels once, off the event loop (see :func:`pipeline.warm_up`)."""
        await asyncio.to_thread(pipeline.warm_up)

    async def aclose(self, reason: str = "service_stopped") -> None:
        """Stop every running session (on shutdown)."""
        self._closing = True
        for sid in list(self.live):
            with contextlib.suppress(GreenroomError):
                await self.stop(sid, reason=reason)
        await self.rooms.aclose()

    # start -------------------------------------------------------------------------------
    async def start(self, req: StartRequest) -> StartedSession:
        """Start a session from a template; returns once avatar and compositor are in the room.

        Raises:
            NotFound: unknown template.
            InvalidInput: a value the provider refuses (e.g. the voice).
            ProviderError / StartFailed: the avatar or compositor could not start.
        """
        t0 = time.monotonic()
        tpl = self.repo.get_template(req.template_id)
        sid = new_id("ses")
        short = sid[4:16]
        room = req.livekit_room or f"greenroom-{short}"
        room_created = req.livekit_room is None
        viewer_identity = req.livekit_identity or f"viewer-{short}"
        spec = background_values.to_spec(tpl.background, self.repo, self.library.root)
        row = self.repo.add_session(
            SessionRow(
                id=sid,
                template_id=tpl.id,
                template_name=tpl.name,
                provider=tpl.provider,
                status="starting",
                room=room,
                room_created=room_created,
                viewer_identity=viewer_identity,
                background=tpl.background,
                idle_timeout=tpl.idle_timeout,
            )
        )
        log.info(
            "session %s starting: template %s, provider %s, room %s",
            sid,
            tpl.id,
            tpl.provider,
            room,
            extra={"session": sid, "event": "starting", "template": tpl.id, "room": room},
        )
        avatar = compositor = None
        try:
            from greenroom.avatars import RoomTarget, get_provider

            # The room is created by the first participant that joins; it is ours to delete
            # at the end when Greenroom chose its name.
            target = RoomTarget.from_settings(self.settings, room)
            provider = get_provider(tpl.provider)
            options = dict(tpl.provider_options or {})
            identity = str(options.pop("identity", f"avatar-{short}"))
            # Avatar and compositor join at the same time: the compositor waits for the
            # identity it was given (and shows the background meanwhile).
            joined: dict[str, float] = {}
            results = await asyncio.gather(
                pipeline.timed(
                    provider.start(
                        target,
                        avatar_id=tpl.avatar_id,
                        voice=req.voice_id or tpl.voice,
                        identity=identity,
                        quality=tpl.quality,
                        settings=self.settings,
                        **options,
                    ),
                    joined,
                    "avatar_ms",
                    t0,
                ),
                pipeline.timed(
                    pipeline.start_compositor(
                        target, identity, spec, tpl.keying, sid, self._rpc_background
                    ),
                    joined,
                    "compositor_ms",
                    t0,
                ),
                return_exceptions=True,
            )
            avatar = None if isinstance(results[0], BaseException) else results[0]
            compositor = None if isinstance(results[1], BaseException) else results[1]
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if avatar.identity != identity:  # the provider chose its own identity
                await compositor.aclose()
                compositor = None
                compositor = await pipeline.start_compositor(
                    target, avatar.identity, spec, tpl.keying, sid, self._rpc_background
                )
        except BaseException as exc:
            await self._abort_start(sid, room if room_created else None, avatar, compositor, exc)
            self.metrics.sessions_failed.labels(tpl.provider).inc()
            if isinstance(exc, InvalidInput | ProviderError | StartFailed):
                raise
            if isinstance(exc, GreenroomError):
                raise StartFailed(
                    f"could not start the {tpl.provider!r} avatar: {exc.message}"
                ) from exc
            if isinstance(exc, Exception):
                raise StartFailed(
                    f"could not start the {tpl.provider!r} avatar: {type(exc).__name__}: {exc}"
                ) from exc
            raise

        now_mono = time.monotonic()
        live = LiveSession(
            id=sid,
            room=room,
            room_created=room_created,
            avatar=avatar,
            compositor=compositor,
            idle_timeout=float(tpl.idle_timeout),
            started_mono=t0,
            last_activity=now_mono,
        )
        self.live[sid] = live
        row = self.repo.update_session(
            sid,
            status="started",
            started_at=_now(),
            avatar_identity=avatar.identity,
            compositor_identity=compositor.identity,
        )
        self.metrics.sessions_started.labels(tpl.provider).inc()
        avatar.on_state(lambda state: self._on_avatar_state(sid, state))
        if hasattr(compositor, "on_close"):
            compositor.on_close(lambda why: self._on_compositor_closed(sid, why))
        self._spawn(live, self._after_first_frame(live, req.text))
        self._spawn(live, self._watch_idle(live))
        log.info(
            "session %s started in %.0f ms (avatar joined after %.0f ms, compositor after %.0f ms)",
            sid,
            (now_mono - t0) * 1000,
            joined.get("avatar_ms", 0.0),
            joined.get("compositor_ms", 0.0),
            extra={
                "session": sid,
                "event": "started",
                "ms": round((now_mono - t0) * 1000, 1),
                **joined,
            },
        )

        expires = _now() + tokens.VIEWER_TTL
        token = tokens.viewer_token(
            self.settings.livekit_api_key,
            self.settings.livekit_api_secret.get_secret_value(),
            room=room,
            identity=viewer_identity,
        )
        return StartedSession(
            row=row,
            livekit_url=self.settings.client_livekit_url,
            access_token=token,
            access_token_expires_at=expires,
            viewer_url=self.viewer_url(sid, token),
        )

    def viewer_url(self, session_id: str, token: str) -> str:
        """The viewer page; the token travels in the fragment, which browsers never send."""
        lk = quote(self.settings.client_livekit_url, safe="")
        return f"{self.public_base_url}/viewer/{session_id}#url={lk}&token={token}"

    async def _abort_start(
        self, sid: str, room: str | None, avatar: Any, compositor: Any, exc: BaseException
    ) -> None:
        for part in (compositor, avatar):
            if part is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(part.aclose(), CLOSE_TIMEOUT)
        if room is not None:
            with contextlib.suppress(Exception):
                await self.rooms.delete(room)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        self.repo.update_session(
            sid,
            status="failed",
            stop_reason="start_failed",
            error=message[:2000],
            stopped_at=_now(),
        )
        log.warning(
            "session %s failed to start: %s",
            sid,
            message,
            extra={"session": sid, "event": "failed"},
        )

    def _spawn(self, live: LiveSession, coro: Any) -> None:
        task = asyncio.create_task(coro)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)

    async def _after_first_frame(self, live: LiveSession, text: str | None) -> None:
        try:
            await live.compositor.wait_first_frame(FIRST_FRAME_TIMEOUT)
        except Exception as exc:
            log.warning(
                "session %s: no composited frame within %.0f s: %s",
                live.id,
                FIRST_FRAME_TIMEOUT,
                exc,
            )
            return
        elapsed = time.monotonic() - live.started_mono
        self.metrics.first_frame.observe(elapsed)
        self.repo.update_session(live.id, first_frame_ms=round(elapsed * 1000, 1))
        log.info(
            "session %s: first composited frame after %.0f ms",
            live.id,
            elapsed * 1000,
            extra={"session": live.id, "event": "first_frame", "ms": round(elapsed * 1000, 1)},
        )
        if text:
            try:
                await live.avatar.speak(text, mode="repeat")
            except GreenroomError as exc:
                log.warning("session %s: opening text refused: %s", live.id, exc.message)

    async def _watch_idle(self, live: LiveSession) -> None:
        while not live.stopping:
            if str(getattr(live.avatar, "state", "")) == "speaking":
                live.touch()
            remaining = live.idle_timeout - (time.monotonic() - live.last_activity)
            if remaining <= 0:
                log.info("session %s idle for %.0f s: stopping", live.id, live.idle_timeout)
                with contextlib.suppress(GreenroomError):
                    await self.stop(live.id, reason="idle_timeout")
                return
            await asyncio.sleep(min(remaining, 1.0))

    def _on_avatar_state(self, sid: str, state: Any) -> None:
        live = self.live.get(sid)
        if live is None or live.stopping or self._closing:
            return
        if str(state) == "stopped":
            log.info("session %s: avatar stopped on its own", sid)
            self._spawn(live, self._stop_quietly(sid, "avatar_stopped"))

    def _on_compositor_closed(self, sid: str, why: str) -> None:
        live = self.live.get(sid)
        if live is None or live.stopping or self._closing:
            return
        log.info("session %s: compositor ended on its own (%s)", sid, why)
        self._spawn(live, self._stop_quietly(sid, f"compositor_closed: {why}"[:200]))

    async def _stop_quietly(self, sid: str, reason: str) -> None:
        with contextlib.suppress(GreenroomError):
            await self.stop(sid, reason=reason)

    # queries -----------------------------------------------------------------------------
    def get(self, session_id: str) -> dict[str, Any]:
        return self._view(self.repo.get_session(session_id))

    def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return [self._view(r) for r in self.repo.list_sessions(status=status, limit=limit)]

    def live_metrics(self) -> dict[str, dict[str, Any]]:
        out = {}
        for sid, live in list(self.live.items()):
            try:
                out[sid] = dict(live.compositor.metrics())
            except Exception:
                out[sid] = {}
        return out

    def _view(self, row: SessionRow) -> dict[str, Any]:
        live = self.live.get(row.id)
        view: dict[str, Any] = {
            "session_id": row.id,
            "status": row.status,
            "stop_reason": row.stop_reason,
            "error": row.error,
            "template_id": row.template_id,
            "template_name": row.template_name,
            "provider": row.provider,
            "room": row.room,
            "room_created": row.room_created,
            "livekit_url": self.settings.client_livekit_url,
            "viewer_identity": row.viewer_identity,
            "avatar_identity": row.avatar_identity,
            "compositor_identity": row.compositor_identity,
            "avatar_state": None,
            "background": row.background,
            "key_color": None,
            "idle_timeout": row.idle_timeout,
            "idle_seconds": None,
            "first_frame_ms": row.first_frame_ms,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "stopped_at": row.stopped_at,
            "metrics": None,
        }
        if live is not None and not live.stopping:
            # the picture may have been switched through the LiveKit RPC: report what is used
            with contextlib.suppress(Exception):
                in_use = background_values.from_spec(live.compositor.background, self.library.root)
                if in_use != row.background:
                    self.repo.update_session(row.id, background=in_use)
                    view["background"] = in_use
            view["avatar_state"] = str(getattr(live.avatar, "state", None) or "") or None
            view["idle_seconds"] = round(time.monotonic() - live.last_activity, 1)
            with contextlib.suppress(Exception):
                view["key_color"] = _hex(live.compositor.key_color)
            with contextlib.suppress(Exception):
                view["metrics"] = dict(live.compositor.metrics())
        return view

    # actions -----------------------------------------------------------------------------
    def _running(self, session_id: str) -> LiveSession:
        live = self.live.get(session_id)
        if live is not None and not live.stopping:
            return live
        row = self.repo.get_session(session_id)  # NotFound for unknown ids
        if row.status == "starting":
            raise Conflict(f"session {session_id} is still starting; try again in a moment")
        if row.status in OPEN_STATUSES:
            raise Conflict(f"session {session_id} is not run by this server process")
        why = f" ({row.stop_reason})" if row.stop_reason else ""
        raise Conflict(f"session {session_id} is {row.status}{why}; start a new session")

    async def speak(self, session_id: str, text: str, mode: str = "repeat") -> None:
        live = self._running(session_id)
        live.touch()
        await live.avatar.speak(text, mode=mode)

    async def interrupt(self, session_id: str) -> None:
        live = self._running(session_id)
        live.touch()
        await live.avatar.interrupt()

    async def keep_alive(self, session_id: str) -> None:
        live = self._running(session_id)
        live.touch()
        await live.avatar.keep_alive()

    def _rpc_background(self, value: object) -> Any:
        """What a room participant may switch to over the compositor's RPC: the same values
        as ``PUT .../background`` (colours, blur, none, library ids), never a file path."""
        if not isinstance(value, str | dict):
            raise InvalidInput("background must be a string or an object", field="background")
        canonical = background_values.normalize(value, self.repo)
        return background_values.to_spec(canonical, self.repo, self.library.root)

    async def set_background(
        self, session_id: str, value: str | dict[str, Any], transition: float = 0.3
    ) -> dict[str, Any]:
        live = self._running(session_id)
        canonical = background_values.normalize(value, self.repo)
        spec = background_values.to_spec(canonical, self.repo, self.library.root)
        live.touch()
        await live.compositor.set_background(spec, transition=transition)
        self.repo.update_session(session_id, background=canonical)
        log.info(
            "session %s: background -> %s",
            session_id,
            canonical,
            extra={"session": session_id, "event": "background", "background": canonical},
        )
        return self.get(session_id)

    async def snapshot(self, session_id: str) -> bytes:
        live = self._running(session_id)
        png = await asyncio.to_thread(live.compositor.snapshot_png)
        if inspect.isawaitable(png):
            png = await png
        if not png:
            raise Conflict(f"session {session_id} has no composited frame yet; try again shortly")
        return png

    def backgrounds_in_use(self) -> Sequence[str]:
        return [self.repo.get_session(sid).background for sid in list(self.live)]

    async def stop(self, session_id: str, reason: str = "stopped_by_user") -> dict[str, Any]:
        """Stop avatar and compositor, delete the room if Greenroom created it, record why."""
        live = self.live.get(session_id)
        if live is None or live.stopping:
            row = self.repo.get_session(session_id)
            if live is not None:
                raise Conflict(f"session {session_id} is already stopping")
            if row.status == "starting":
                raise Conflict(f"session {session_id} is still starting; try again in a moment")
            if row.status in OPEN_STATUSES:  # a row no process runs: correct it
                if row.room_created:
                    with contextlib.suppress(Exception):
                        await self.rooms.delete(row.room)
                self.repo.update_session(
                    session_id, status="stopped", stop_reason=reason, stopped_at=_now()
                )
                return self.get(session_id)
            raise Conflict(f"session {session_id} is already {row.status} ({row.stop_reason})")
        live.stopping = True
        final: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            final["background"] = background_values.from_spec(
                live.compositor.background, self.library.root
            )
        current = asyncio.current_task()
        for task in list(live.tasks):
            if task is not current:
                task.cancel()
        for part, what in ((live.compositor, "compositor"), (live.avatar, "avatar")):
            try:
                # bounded: a participant stuck on a dead connection must not hold up the stop
                await asyncio.wait_for(part.aclose(), CLOSE_TIMEOUT)
            except Exception as exc:
                log.warning(
                    "session %s: %s did not close cleanly: %s",
                    session_id,
                    what,
                    f"{type(exc).__name__}: {exc}",
                )
        if live.room_created:
            try:
                await self.rooms.delete(live.room)
            except Exception as exc:
                log.warning("session %s: could not delete room %s: %s", session_id, live.room, exc)
        self.live.pop(session_id, None)
        self.repo.update_session(
            session_id, status="stopped", stop_reason=reason, stopped_at=_now(), **final
        )
        self.metrics.sessions_stopped.labels(reason).inc()
        log.info(
            "session %s stopped: %s",
            session_id,
            reason,
            extra={"session": session_id, "event": "stopped", "reason": reason},
        )
        return self.get(session_id)
