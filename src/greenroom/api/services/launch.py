"""Launching a recorded session: its room, its avatar and its compositor, or nothing.

Order matters for what a failure leaves behind. The session row exists (``starting``) before
anything runs; the room is created next and marked in the row at once (so a restart can
delete it); then avatar and compositor join together. If any step fails, everything started
so far is closed, the room deleted, and the row marked ``failed`` (:meth:`Launcher.roll_back`).

A vendor avatar's session (a paid one) is recorded in the row the moment the vendor names it,
before the avatar joins, so that a process killed mid-start leaves the next process enough to
stop it (:meth:`~greenroom.api.services.sessions.SessionManager.reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from greenroom.api.metrics import Metrics
from greenroom.api.services import background_values, pipeline
from greenroom.api.services.contracts import AvatarSession, BackgroundResolver, SessionCompositor
from greenroom.api.services.lifetime import StopReason, room_timeout
from greenroom.api.services.live import StartRequest
from greenroom.api.services.rooms import RoomReady, Rooms
from greenroom.avatars.base import JOB_AVATARS
from greenroom.backgrounds.library import BackgroundLibrary
from greenroom.config import Settings
from greenroom.errors import GreenroomError, InvalidInput, ProviderError, StartFailed
from greenroom.store import Repo
from greenroom.store.errors import DatabaseUnavailable, is_unavailable
from greenroom.store.errors import reason as db_reason
from greenroom.store.models import SessionRow, TemplateRow
from greenroom.store.repo import VENDOR_CLEARED

if TYPE_CHECKING:
    from greenroom.avatars.base import RoomTarget, VendorSessionRef
    from greenroom.backgrounds.spec import BackgroundSpec

log = logging.getLogger("greenroom.sessions")

CLOSE_TIMEOUT = 10.0  # seconds an avatar or compositor gets to leave the room
# A failed start whose row cannot be written (database down) is written again in the
# background: every RECORD_RETRY seconds (doubling up to RECORD_RETRY_MAX) for RECORD_GIVE_UP s.
RECORD_RETRY, RECORD_RETRY_MAX, RECORD_GIVE_UP = 1.0, 10.0, 600.0


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
        self._pending: set[asyncio.Task[None]] = set()  # rows still to be written (see roll_back)

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
            if is_unavailable(exc):  # never the SQL statement in an answer
                raise DatabaseUnavailable() from exc
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
        spec: BackgroundSpec,
        room: RoomReady,
        t0: float,
        parts: list[AvatarSession | SessionCompositor],
    ) -> Launch:
        """Avatar and compositor join at the same time: the compositor waits for the
        identity it was given (and shows the background meanwhile)."""
        from greenroom.avatars import RoomTarget, get_provider

        target = RoomTarget.from_settings(self.settings, row.room)
        from greenroom.avatars.base import VendorProvider

        options: dict[str, Any] = dict(tpl.provider_options or {})
        identity = str(options.pop("identity", f"avatar-{row.id[4:16]}"))
        if self.settings.compositor == "dispatch" and tpl.provider in JOB_AVATARS:
            return await self._join_one_job(row, tpl, req, spec, room, t0, parts, identity, options)
        provider = get_provider(tpl.provider)
        if isinstance(provider, VendorProvider):
            options["on_vendor_session"] = lambda ref: self._record_vendor_session(row.id, ref)
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

    async def _join_one_job(
        self,
        row: SessionRow,
        tpl: TemplateRow,
        req: StartRequest,
        spec: BackgroundSpec,
        room: RoomReady,
        t0: float,
        parts: list[AvatarSession | SessionCompositor],
        identity: str,
        options: dict[str, Any],
    ) -> Launch:
        """Dispatch mode with the built-in avatar: one job on a worker runs both."""
        from greenroom.api.services.dispatched import DispatchedCompositor, dispatch_options
        from greenroom.compositor.worker import AvatarRequest

        avatar = AvatarRequest(
            provider=tpl.provider,
            avatar_id=tpl.avatar_id,
            voice=req.voice_id or tpl.voice,
            quality=tpl.quality,
            options=options,
        )
        joined: dict[str, float] = {}
        compositor = await pipeline.timed(
            DispatchedCompositor.start(
                self.settings,
                self.rooms.client(),
                row.room,
                identity,
                spec,
                dispatch_options(self._keying(tpl), row.id),
                avatar=avatar,
            ),
            joined,
            "compositor_ms",
            t0,
        )
        parts.append(compositor)
        assert compositor.avatar is not None  # asked for above
        joined["avatar_ms"] = joined["compositor_ms"]
        return Launch(
            t0=t0, room=room, avatar=compositor.avatar, compositor=compositor, joined=joined
        )

    @staticmethod
    def _keying(tpl: TemplateRow) -> dict[str, object]:
        return {**tpl.keying, "viewer_control": tpl.viewer_control}

    async def _record_vendor_session(self, sid: str, ref: VendorSessionRef) -> None:
        """Store the vendor's session before the avatar joins. If the store refuses, the
        provider stops the vendor session and the start fails: nothing paid runs unrecorded."""
        await asyncio.to_thread(
            self.repo.update_session,
            sid,
            vendor=ref.vendor,
            vendor_session_id=ref.session_id,
            vendor_stop_token=ref.stop_token,
        )
        log.info(
            "session %s: %s session %s recorded",
            sid,
            ref.vendor,
            ref.session_id,
            extra={"session": sid, "event": "vendor_session", "vendor": ref.vendor},
        )

    async def _compositor(
        self, target: RoomTarget, identity: str, spec: BackgroundSpec, tpl: TemplateRow, sid: str
    ) -> SessionCompositor:
        """In this process, or (``GREENROOM_COMPOSITOR=dispatch``) as a job on a worker."""
        if self.settings.compositor == "dispatch":
            from greenroom.api.services.dispatched import DispatchedCompositor, dispatch_options

            return await DispatchedCompositor.start(
                self.settings,
                self.rooms.client(),
                target.room,
                identity,
                spec,
                dispatch_options(self._keying(tpl), sid),
            )
        return await pipeline.start_compositor(
            target,
            identity,
            spec,
            self._keying(tpl),
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
        """Close what started, delete the room if Greenroom created it, mark the row failed.

        A vendor session the provider started is stopped by the provider itself when the
        avatar's start fails, or by the avatar's ``aclose``; the row keeps the vendor reference
        only if that close failed, for the next restart to stop. If the database refuses the
        row, it is written again in the background until it answers (bounded, logged).
        """
        closed = True
        for part in reversed(parts):
            try:
                await asyncio.wait_for(part.aclose(), CLOSE_TIMEOUT)
            except Exception as close_exc:
                closed = False
                log.warning("session %s: a part did not close cleanly: %r", row.id, close_exc)
        if room_created:
            with contextlib.suppress(Exception):
                await self.rooms.delete(row.room)
        if isinstance(exc, GreenroomError):
            message = exc.message
        elif is_unavailable(exc):
            message = f"the database was unavailable: {db_reason(exc)}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        fields: dict[str, object] = {
            "status": "failed",
            "stop_reason": StopReason.START_FAILED,
            "error": message[:2000],
            "stopped_at": _now(),
            **(VENDOR_CLEARED if closed else {}),
        }
        try:
            await asyncio.to_thread(self.repo.update_session, row.id, **fields)
        except Exception as db_exc:
            log.error(
                "session %s: could not record the failed start (%s); retrying in the background",
                row.id,
                db_reason(db_exc),
            )
            task = asyncio.create_task(self._record_later(row.id, fields))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        log.warning(
            "session %s failed to start: %s",
            row.id,
            message,
            extra={"session": row.id, "event": "failed"},
        )

    async def _record_later(self, sid: str, fields: dict[str, object]) -> None:
        """Write a failed start's row once the database answers again (a row left
        ``starting`` would show a session that never runs); gives up after RECORD_GIVE_UP s,
        leaving it to the next restart's reconcile."""
        deadline = time.monotonic() + RECORD_GIVE_UP
        wait = RECORD_RETRY
        tries = 1
        while time.monotonic() < deadline:
            await asyncio.sleep(wait)
            tries += 1
            try:
                await asyncio.to_thread(self.repo.update_session, sid, **fields)
            except Exception as exc:
                log.debug("session %s: failed start still not recorded: %s", sid, db_reason(exc))
                wait = min(wait * 2, RECORD_RETRY_MAX)
                continue
            log.info("session %s: failed start recorded after %d tries", sid, tries)
            return
        log.error("session %s: failed start not recorded; a restart will correct it", sid)

    async def aclose(self) -> None:
        """Stop retrying rows (on shutdown; the next start's reconcile corrects them)."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)


def _now() -> datetime:
    return datetime.now(UTC)
