"""Launching a recorded session: its room, its avatar and its compositor, or nothing.

Order matters for what a failure leaves behind. The session row exists (``starting``) before
anything runs; the room is created next and marked in the row at once (so a restart can
delete it); then avatar and compositor join together. If any step fails, everything started
so far is closed, the room deleted, and the row marked ``failed`` (:meth:`Launcher.roll_back`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from greenroom.api.metrics import Metrics
from greenroom.api.services import background_values, pipeline
from greenroom.api.services.contracts import AvatarSession, BackgroundResolver, SessionCompositor
from greenroom.api.services.lifetime import StopReason, room_timeout
from greenroom.api.services.live import StartRequest
from greenroom.api.services.rooms import RoomReady, Rooms
from greenroom.backgrounds.library import BackgroundLibrary
from greenroom.config import Settings
from greenroom.errors import GreenroomError, InvalidInput, ProviderError, StartFailed
from greenroom.store import Repo
from greenroom.store.models import SessionRow, TemplateRow

log = logging.getLogger("greenroom.sessions")

CLOSE_TIMEOUT = 10.0  # seconds an avatar or compositor gets to leave the room


@dataclass
class Launch:
    """What a successful launch started."""

    t0: float  # monotonic time the launch began
    room: RoomReady
    avatar: AvatarSession
    compositor: SessionCompositor
    joined: dict[str, float] = field(default_factory=dict)  # ms after t0 each part joined

    def log_started(self, sid: str) -> None:
        ms = (time.monotonic() - self.t0) * 1000
        log.info(
            "session %s started in %.0f ms (avatar joined after %.0f ms, compositor after %.0f ms)",
            sid,
            ms,
            self.joined.get("avatar_ms", 0.0),
            self.joined.get("compositor_ms", 0.0),
            extra={"session": sid, "event": "started", "ms": round(ms, 1), **self.joined},
        )


class Launcher:
    def __init__(
        self,
        settings: Settings,
        repo: Repo,
        library: BackgroundLibrary,
        rooms: Rooms,
        metrics: Metrics,
        resolve_background: BackgroundResolver,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.library = library
        self.rooms = rooms
        self.metrics = metrics
        self.resolve_background = resolve_background

    async def launch(self, row: SessionRow, tpl: TemplateRow, req: StartRequest) -> Launch:
        """Create the room and start avatar and compositor in it; roll back on failure.

        Raises:
            InvalidInput / ProviderError: refused by the provider.
            StartFailed: anything else that stopped the start (LiveKit not answering...).
        """
        t0 = time.monotonic()
        room = RoomReady(created=False)
        parts: list[AvatarSession | SessionCompositor] = []
        try:
            timeout = room_timeout(self.settings.room_timeout, row.idle_timeout, row.max_duration)
            room = await self.rooms.ensure(row.room, timeout)
            if room.created:
                await asyncio.to_thread(self.repo.update_session, row.id, room_created=True)
            spec = await asyncio.to_thread(
                background_values.to_spec, tpl.background, self.repo, self.library.root
            )
            launch = await self._join(row, tpl, req, spec, room, t0, parts)
        except BaseException as exc:
            await self.roll_back(row, room.created, parts, exc)
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
        return launch

    async def _join(
        self,
        row: SessionRow,
        tpl: TemplateRow,
        req: StartRequest,
        spec: object,
        room: RoomReady,
        t0: float,
        parts: list[AvatarSession | SessionCompositor],
    ) -> Launch:
        """Avatar and compositor join at the same time: the compositor waits for the
        identity it was given (and shows the background meanwhile)."""
        from greenroom.avatars import RoomTarget, get_provider

        target = RoomTarget.from_settings(self.settings, row.room)
        provider = get_provider(tpl.provider)
        options = dict(tpl.provider_options or {})
        identity = str(options.pop("identity", f"avatar-{row.id[4:16]}"))
        joined: dict[str, float] = {}
        avatar_res, compositor_res = await asyncio.gather(
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
                self._compositor(target, identity, spec, tpl, row.id), joined, "compositor_ms", t0
            ),
            return_exceptions=True,
        )
        for res in (avatar_res, compositor_res):
            if not isinstance(res, BaseException):
                parts.append(res)
        if isinstance(avatar_res, BaseException):
            raise avatar_res
        if isinstance(compositor_res, BaseException):
            raise compositor_res
        avatar, compositor = avatar_res, compositor_res
        if avatar.identity != identity:  # the provider chose its own identity
            parts.remove(compositor)
            await compositor.aclose()
            compositor = await self._compositor(target, avatar.identity, spec, tpl, row.id)
            parts.append(compositor)
        return Launch(t0=t0, room=room, avatar=avatar, compositor=compositor, joined=joined)

    async def _compositor(
        self, target: object, identity: str, spec: object, tpl: TemplateRow, sid: str
    ) -> SessionCompositor:
        return await pipeline.start_compositor(
            target,  # type: ignore[arg-type]  # a RoomTarget
            identity,
            spec,  # type: ignore[arg-type]  # a BackgroundSpec
            {**tpl.keying, "viewer_control": tpl.viewer_control},
            sid,
            self.resolve_background,
        )

    async def roll_back(
        self,
        row: SessionRow,
        room_created: bool,
        parts: list[AvatarSession | SessionCompositor],
        exc: BaseException,
    ) -> None:
        """Close what started, delete the room if Greenroom created it, mark the row failed."""
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(part.aclose(), CLOSE_TIMEOUT)
        if room_created:
            with contextlib.suppress(Exception):
                await self.rooms.delete(row.room)
        message = exc.message if isinstance(exc, GreenroomError) else f"{type(exc).__name__}: {exc}"
        try:
            await asyncio.to_thread(
                self.repo.update_session,
                row.id,
                status="failed",
                stop_reason=StopReason.START_FAILED,
                error=message[:2000],
                stopped_at=_now(),
            )
        except Exception as db_exc:  # a restart's reconcile corrects the row
            log.error("session %s: could not record the failed start: %r", row.id, db_exc)
        log.warning(
            "session %s failed to start: %s",
            row.id,
            message,
            extra={"session": row.id, "event": "failed"},
        )


def _now() -> datetime:
    return datetime.now(UTC)
