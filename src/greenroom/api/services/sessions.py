"""Streaming sessions: an avatar and a compositor in a LiveKit room, started from a template.

``SessionManager`` owns the running sessions of this process. The database row is the record
users see; the in-memory :class:`LiveSession` holds the avatar and compositor. Every state
change is written to the row (in a worker thread: a slow database never stalls the event
loop), so what ``GET`` reports stays true across restarts.

Several processes (replicas) may share one database: each row is owned by a lease (see
:mod:`.leases`) that the replica running the session renews. :meth:`SessionManager.reconcile`
(on start, then every ``lease_seconds``) takes over sessions no replica holds any more and
marks them stopped (``service_restarted``); a session another replica holds is left to it.

The service owns the room's lifetime (see :mod:`.rooms`) and ends a session for one
:class:`~.lifetime.StopReason`: idle or maximum duration reached, the room closed, the avatar
or compositor gone, LiveKit unreachable, or a caller's ``DELETE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

from greenroom import tokens
from greenroom.api.metrics import Metrics
from greenroom.api.services import background_values
from greenroom.api.services.contracts import AvatarSession, SessionCompositor
from greenroom.api.services.launch import Launch, Launcher
from greenroom.api.services.leases import Leases, replica_id
from greenroom.api.services.lifetime import Lifetime, StopReason
from greenroom.api.services.limits import SessionSlots
from greenroom.api.services.live import LiveSession, StartedSession, StartRequest
from greenroom.api.services.rooms import Rooms
from greenroom.api.services.vendor_records import stop_leftover_vendor_sessions
from greenroom.api.services.views import background_in_use, session_view
from greenroom.api.services.watch import SessionWatch
from greenroom.avatars.base import JOB_AVATARS
from greenroom.backgrounds.library import BackgroundLibrary
from greenroom.config import Settings
from greenroom.errors import Conflict, GreenroomError, InvalidInput
from greenroom.store import Repo
from greenroom.store.models import SessionRow, TemplateRow
from greenroom.store.repo import OPEN_STATUSES, VENDOR_CLEARED, new_id
from greenroom.warmup import warm_up

if TYPE_CHECKING:
    from greenroom.api.services.dispatched import DispatchedCompositor
    from greenroom.backgrounds.spec import BackgroundSpec

__all__ = ["SessionManager", "StartRequest", "StartedSession"]

log = logging.getLogger("greenroom.sessions")
T = TypeVar("T")

CLOSE_TIMEOUT = 10.0  # seconds an avatar or compositor gets to leave the room
COMMAND_WAIT = 20.0  # s for another replica's job to confirm a stop
HELD_STOP_WAIT = 30.0  # s for the holding replica to record a stop asked through another


def _now() -> datetime:
    return datetime.now(UTC)


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
        self.slots = SessionSlots(settings.max_sessions, settings.max_sessions_per_key)
        self.launcher = Launcher(settings, repo, library, self.rooms, metrics, self._rpc_background)
        self.watch = SessionWatch(settings, repo, self.rooms, metrics, self.stop)
        self.live: dict[str, LiveSession] = {}
        self.replica = replica_id(settings)
        self.owned: set[str] = set()  # sessions whose lease this replica holds: starting or live
        self.leases = Leases(
            settings,
            repo,
            self.replica,
            owned=lambda: self.owned,
            lost=self._lost,
            sweep=self.reconcile,
        )
        self._reconciling = asyncio.Lock()

    async def _db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run a store call in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # lifecycle ---------------------------------------------------------------------------
    async def reconcile(self) -> list[str]:
        """Close the sessions no replica holds any more (lease expired or released, or from
        before leases): take each over (:meth:`Repo.take_over`, so one replica only acts on
        it), mark it stopped (``service_restarted``) and delete the room Greenroom created.
        Then stop the vendor sessions left running on rows this replica took over (see
        :func:`.vendor_records.stop_leftover_vendor_sessions`). Returns the closed ids."""
        async with self._reconciling:
            await self.leases.release_ended()
            now = _now()
            fixed = []
            for row in await self._db(self.repo.open_sessions, expired_at=now):
                if row.id in self.owned:
                    continue
                taken = await self._take_over(row.id, now)
                if taken is not None and not await self._adopt(taken):
                    await self._close_row(taken, StopReason.SERVICE_RESTARTED)
                    fixed.append(row.id)
            vendor_rows = []
            for row in await self._db(self.repo.vendor_sessions):
                if row.id in self.owned:
                    continue
                if await self._take_over(row.id, now, open_only=False) is not None:
                    vendor_rows.append(row.id)
            if vendor_rows:
                await stop_leftover_vendor_sessions(self.repo, self.settings, only=vendor_rows)
            return fixed

    async def _adopt(self, row: SessionRow) -> bool:
        """Carry on a session taken over from a replica that is gone, if its parts outlived
        it: a dispatched job running the built-in avatar and the compositor (nothing of it
        was in the dead process). Its idle clock starts again; ``max_duration`` still counts
        from the session's start. False: close it instead."""
        if (
            self.settings.compositor != "dispatch"
            or row.status != "started"
            or row.provider not in JOB_AVATARS
            or not row.avatar_identity
        ):
            return False
        try:
            compositor = await self._job_of(row, watch=True)
            if compositor is None or compositor.avatar is None:
                return False
            self.slots.take(row.id, "adopted", self._soonest_end())
        except Exception as exc:
            log.warning("session %s: could not adopt its running job: %r", row.id, exc)
            return False
        lifetime = Lifetime(float(row.idle_timeout), row.max_duration)
        if row.started_at is not None:
            lifetime.started -= max(0.0, (_now() - row.started_at).total_seconds())
        live = LiveSession(row, compositor.avatar, compositor, lifetime, requested=time.monotonic())
        self.owned.add(row.id)
        self.live[row.id] = live
        self.watch.start(live, None, adopted=True)
        log.info(
            "session %s adopted: its job in room %s runs on",
            row.id,
            row.room,
            extra={"session": row.id, "event": "adopted", "room": row.room},
        )
        return True

    async def _take_over(
        self, session_id: str, now: datetime, *, open_only: bool = True
    ) -> SessionRow | None:
        until = self.leases.until(now)
        return await self._db(
            self.repo.take_over, session_id, self.replica, now, until, open_only=open_only
        )

    async def warm_up(self) -> None:
        """Load the frame kernels once, off the event loop (see :func:`greenroom.warmup.warm_up`)."""
        await asyncio.to_thread(warm_up)

    async def aclose(self, reason: str = StopReason.SERVICE_STOPPED) -> None:
        """Stop every running session (on shutdown) and release the leases left."""
        self.watch.closing = True
        for sid in list(self.live):
            with contextlib.suppress(GreenroomError):
                await self.stop(sid, reason=reason)
        await self.leases.aclose()
        if self.owned:  # a stop whose row could not be written: any replica may close it now
            try:
                await self._db(self.repo.release_leases, self.replica, set(self.owned))
            except Exception as exc:
                log.warning("could not release %d session lease(s): %r", len(self.owned), exc)
        await self.launcher.aclose()
        await self.rooms.aclose()

    # start: record, launch, then finish or roll back ---------------------------------------
    async def start(self, req: StartRequest) -> StartedSession:
        """Start a session from a template; returns once avatar and compositor are in the room.

        Raises:
            NotFound: unknown template.
            TooManySessions: a concurrency limit is reached (nothing was started).
            InvalidInput: a value the provider refuses (e.g. the voice).
            ProviderError / StartFailed: the avatar or compositor could not start.
        """
        sid = new_id("ses")
        self.slots.take(sid, req.caller, self._soonest_end())
        self.owned.add(sid)  # before the row exists: no sweep here may take it
        try:
            row, tpl = await self._record(sid, req)
            launch = await self.launcher.launch(row, tpl, req)
            return await self._finish(row, req, launch)
        finally:
            if sid not in self.live:
                self.slots.give_back(sid)
                self.owned.discard(sid)

    async def _record(self, sid: str, req: StartRequest) -> tuple[SessionRow, TemplateRow]:
        """Step 1: the row, status ``starting``, claimed by this replica, before anything runs."""
        tpl = await self._db(self.repo.get_template, req.template_id)
        short = sid[4:16]
        idle = req.idle_timeout if req.idle_timeout is not None else tpl.idle_timeout
        max_duration = req.max_duration if req.max_duration is not None else tpl.max_duration
        if max_duration is not None and max_duration < 1:
            raise InvalidInput("max_duration must be at least 1 second", field="max_duration")
        row = SessionRow(
            id=sid,
            template_id=tpl.id,
            template_name=tpl.name,
            provider=tpl.provider,
            status="starting",
            room=req.livekit_room or f"greenroom-{short}",
            room_created=False,  # set once Greenroom has created it
            viewer_identity=req.livekit_identity or f"viewer-{short}",
            background=tpl.background,
            idle_timeout=idle,
            max_duration=max_duration,
            owner=self.replica,
            lease_expires_at=self.leases.until(),
        )
        row = await self._db(self.repo.add_session, row)
        log.info(
            "session %s starting: template %s, provider %s, room %s",
            sid,
            tpl.id,
            tpl.provider,
            row.room,
            extra={"session": sid, "event": "starting", "template": tpl.id, "room": row.room},
        )
        return row, tpl

    async def _finish(self, row: SessionRow, req: StartRequest, launch: Launch) -> StartedSession:
        """Step 3: record ``started`` and watch the session; if that fails, roll back."""
        lifetime = Lifetime(float(row.idle_timeout), row.max_duration)  # both run from now
        try:
            row = await self._db(
                self.repo.update_session,
                row.id,
                status="started",
                started_at=_now(),
                room_created=launch.room.created,
                avatar_identity=launch.avatar.identity,
                compositor_identity=launch.compositor.identity,
            )
        except BaseException as exc:
            parts: list[AvatarSession | SessionCompositor] = [launch.avatar, launch.compositor]
            await self.launcher.roll_back(row, launch.room.created, parts, exc)
            raise
        live = LiveSession(row, launch.avatar, launch.compositor, lifetime, requested=launch.t0)
        self.live[row.id] = live
        self.metrics.sessions_started.labels(row.provider).inc()
        self.watch.start(live, req.text)
        launch.log_started(row.id)
        expires = _now() + tokens.VIEWER_TTL
        token = tokens.viewer_token(
            self.settings.livekit_api_key,
            self.settings.livekit_api_secret.get_secret_value(),
            room=row.room,
            identity=row.viewer_identity,
        )
        return StartedSession(
            row=row,
            livekit_url=self.settings.client_livekit_url,
            access_token=token,
            access_token_expires_at=expires,
            viewer_url=self.viewer_url(row.id, token),
            warnings=launch.room.warnings,
        )

    def _soonest_end(self) -> float | None:
        lefts = [s.lifetime.time_left()[0] for s in self.live.values() if not s.stopping]
        return min(lefts) if lefts else None

    def viewer_url(self, session_id: str, token: str) -> str:
        """The viewer page; the token travels in the fragment, which browsers never send."""
        lk = quote(self.settings.client_livekit_url, safe="")
        return f"{self.public_base_url}/viewer/{session_id}#url={lk}&token={token}"

    # queries -----------------------------------------------------------------------------
    async def get(self, session_id: str) -> dict[str, object]:
        return self._view(await self._db(self.repo.get_session, session_id))

    async def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, object]]:
        rows = await self._db(self.repo.list_sessions, status=status, limit=limit)
        return [self._view(r) for r in rows]

    def _view(self, row: SessionRow) -> dict[str, object]:
        live = self.live.get(row.id)
        return session_view(row, live, self.settings.client_livekit_url, self.library.root)

    def backgrounds_in_use(self) -> Sequence[str]:
        return [background_in_use(s, self.library.root) for s in list(self.live.values())]

    # actions -----------------------------------------------------------------------------
    async def _running(self, session_id: str) -> LiveSession:
        live = self.live.get(session_id)
        if live is not None:
            if live.stopping:
                raise Conflict(f"session {session_id} is stopping; start a new session")
            return live
        row = await self._db(self.repo.get_session, session_id)  # NotFound for unknown ids
        remote = await self._held_job(row)
        if remote is not None:
            return remote
        self._check_not_held(row)
        if row.status == "starting":
            raise Conflict(f"session {session_id} is still starting; try again in a moment")
        if row.status in OPEN_STATUSES:
            raise Conflict(
                f"session {session_id} is not run by any server process any more; it is marked "
                f"stopped ({StopReason.SERVICE_RESTARTED}) shortly"
            )
        why = f" ({row.stop_reason})" if row.stop_reason else ""
        raise Conflict(f"session {session_id} is {row.status}{why}; start a new session")

    async def speak(self, session_id: str, text: str, mode: str = "repeat") -> None:
        live = await self._running(session_id)
        live.touch()
        await live.avatar.speak(text, mode=mode)  # type: ignore[arg-type]  # checked there

    async def interrupt(self, session_id: str) -> None:
        live = await self._running(session_id)
        live.touch()
        await live.avatar.interrupt()

    async def keep_alive(self, session_id: str) -> None:
        live = await self._running(session_id)
        if session_id not in self.live:  # a dispatched job held by another replica
            row = await self._db(self.repo.get_session, session_id)
            raise Conflict(
                f"session {session_id} is held by replica {row.owner}, which keeps its idle "
                "clock; send keep_alive there"
            )
        live.touch()
        await live.avatar.keep_alive()

    async def _job_of(self, row: SessionRow, *, watch: bool) -> DispatchedCompositor | None:
        """A handle on the session's running compositor job (None: it is not in the room)."""
        from greenroom.api.services.dispatched import DispatchedCompositor

        assert row.avatar_identity  # callers check: a started session has one
        spec = await self._db(
            background_values.to_spec, row.background, self.repo, self.library.root
        )
        return await DispatchedCompositor.adopt(
            self.settings,
            self.rooms.client(),
            row.room,
            row.avatar_identity,
            spec,
            job_avatar=row.provider if row.provider in JOB_AVATARS else None,
            watch=watch,
        )

    async def _held_job(self, row: SessionRow) -> LiveSession | None:
        """For a session another replica holds whose compositor is a dispatched job: a
        handle that reaches the job over LiveKit for one call (the holder keeps watching the
        session and its clocks). None when that does not apply or the job is not there."""
        held = (
            row.status == "started"
            and row.owner not in (None, self.replica)
            and row.lease_expires_at is not None
            and row.lease_expires_at > _now()
        )
        if not held or self.settings.compositor != "dispatch" or not row.avatar_identity:
            return None
        from greenroom.api.services.dispatched import AvatarElsewhere

        compositor = await self._job_of(row, watch=False)
        if compositor is None:
            return None
        avatar = compositor.avatar or AvatarElsewhere(
            row.provider, row.avatar_identity, str(row.owner)
        )
        lifetime = Lifetime(float(row.idle_timeout), row.max_duration)
        return LiveSession(row, avatar, compositor, lifetime, requested=time.monotonic())

    def _check_not_held(self, row: SessionRow) -> None:
        """Conflict if another replica holds a live lease on this open session (it runs it)."""
        if row.status not in OPEN_STATUSES or row.owner in (None, self.replica):
            return
        if row.lease_expires_at is None or row.lease_expires_at <= _now():
            return
        if row.status == "starting":
            raise Conflict(
                f"session {row.id} is still starting on replica {row.owner}; try again in a moment"
            )
        raise Conflict(
            f"session {row.id} is run by another replica ({row.owner}); send the request to "
            "that replica"
        )

    def _rpc_background(self, value: object) -> BackgroundSpec:
        """What a room participant may switch to over the compositor's RPC: the same values
        as ``PUT .../background`` (colours, blur, none, library ids), never a file path."""
        if not isinstance(value, str | dict):
            raise InvalidInput("background must be a string or an object", field="background")
        canonical = background_values.normalize(value, self.repo)
        spec: BackgroundSpec = background_values.to_spec(canonical, self.repo, self.library.root)
        return spec

    async def set_background(
        self, session_id: str, value: str | dict[str, object], transition: float = 0.3
    ) -> dict[str, object]:
        live = await self._running(session_id)
        canonical = await self._db(background_values.normalize, value, self.repo)
        spec = await self._db(background_values.to_spec, canonical, self.repo, self.library.root)
        live.touch()
        await live.compositor.set_background(spec, transition=transition)
        live.background = canonical
        await self._db(self.repo.update_session, session_id, background=canonical)
        log.info(
            "session %s: background -> %s",
            session_id,
            canonical,
            extra={"session": session_id, "event": "background", "background": canonical},
        )
        return await self.get(session_id)

    async def snapshot(self, session_id: str) -> bytes:
        live = await self._running(session_id)
        png = await asyncio.to_thread(live.compositor.snapshot_png)
        if not png:
            raise Conflict(f"session {session_id} has no composited frame yet; try again shortly")
        return png

    # stop --------------------------------------------------------------------------------
    async def stop(
        self, session_id: str, reason: str = StopReason.STOPPED_BY_USER, error: str | None = None
    ) -> dict[str, object]:
        """Stop avatar and compositor, delete the room if Greenroom created it, record why."""
        live = self.live.get(session_id)
        if live is None or live.stopping:
            row = await self._db(self.repo.get_session, session_id)
            if live is not None:
                raise Conflict(f"session {session_id} is already stopping")
            if row.status == "starting":
                raise Conflict(f"session {session_id} is still starting; try again in a moment")
            if row.status not in OPEN_STATUSES:
                raise Conflict(f"session {session_id} is already {row.status} ({row.stop_reason})")
            remote = await self._held_job(row)
            if remote is not None:  # the holder records the stop once its job has left
                return await self._stop_held(remote, reason)
            self._check_not_held(row)
            if row.status == "starting" and session_id in self.owned:
                raise Conflict(f"session {session_id} is still starting; try again in a moment")
            # a row no process runs: take it over (exclusive), then correct it
            taken = await self._take_over(session_id, _now())
            if taken is None:
                raise Conflict(f"session {session_id} is being stopped by another replica")
            await self._close_row(taken, reason)
            return await self.get(session_id)
        live.stopping = True
        final = background_in_use(live, self.library.root)
        await live.cancel_tasks()
        avatar_closed = await self._close_parts(live)
        self.live.pop(session_id, None)
        self.slots.give_back(session_id)
        try:
            row = await self._db(self.repo.get_session, session_id)
            # the avatar's close stopped its vendor session; if it failed, a sweep stops it
            vendor = VENDOR_CLEARED if avatar_closed else {}
            await self._close_row(row, reason, error=error, background=final, **vendor)
        finally:  # written or not, this replica no longer runs it (unrenewed, the lease ends)
            self.owned.discard(session_id)
        return await self.get(session_id)

    async def _stop_held(self, remote: LiveSession, reason: str) -> dict[str, object]:
        """Stop a session another replica holds: tell its job to stop with ``reason``; the
        holder sees the job leave with that reason and records the stop. Returns the
        session once it is recorded (within ``HELD_STOP_WAIT`` s, else as it stands)."""
        from greenroom.api.services.dispatched import DispatchedCompositor

        compositor = remote.compositor
        assert isinstance(compositor, DispatchedCompositor)  # what _held_job hands out
        await compositor.command("stop", {"reason": str(reason)}, timeout=COMMAND_WAIT)
        deadline = time.monotonic() + HELD_STOP_WAIT
        while time.monotonic() < deadline:
            row = await self._db(self.repo.get_session, remote.id)
            if row.status not in OPEN_STATUSES:
                break
            await asyncio.sleep(0.5)
        return await self.get(remote.id)

    async def _close_parts(self, live: LiveSession) -> bool:
        """Close compositor, then avatar; True if the avatar closed cleanly."""
        avatar_closed = False
        for part, what in ((live.compositor, "compositor"), (live.avatar, "avatar")):
            try:
                # bounded: a participant stuck on a dead connection must not hold up the stop
                await asyncio.wait_for(part.aclose(), CLOSE_TIMEOUT)
                avatar_closed = part is live.avatar
            except Exception as exc:
                log.warning("session %s: %s did not close cleanly: %r", live.id, what, exc)
        return avatar_closed

    async def _lost(self, session_id: str) -> None:
        """Another replica took this session over (this replica's lease lapsed while the
        database was unreachable) and has recorded its stop: close what still runs here and
        write nothing. A start still in flight is seen again by the next heartbeat."""
        live = self.live.get(session_id)
        if live is None or live.stopping:
            return
        live.stopping = True
        self.live.pop(session_id, None)
        self.owned.discard(session_id)
        log.warning(
            "session %s was taken over by another replica after this replica's lease lapsed; "
            "closing its avatar and compositor here",
            session_id,
            extra={"session": session_id, "event": "lease_lost"},
        )
        await live.cancel_tasks()
        await self._close_parts(live)
        self.slots.give_back(session_id)

    async def _close_row(self, row: SessionRow, reason: str, **fields: object) -> None:
        """Delete the room if it is Greenroom's, then record the stop (and end the lease)."""
        if row.room_created:
            try:
                await self.rooms.delete(row.room)
            except Exception as exc:  # LiveKit down: the row is still corrected
                log.warning("session %s: could not delete room %s: %r", row.id, row.room, exc)
        written = await self._db(
            self.repo.close_session,
            row.id,
            self.replica,
            status="stopped",
            stop_reason=str(reason),
            stopped_at=_now(),
            lease_expires_at=None,
            **fields,
        )
        if not written:  # its lease lapsed and another replica took it: that one records it
            log.warning(
                "session %s: taken over by another replica, which records its stop (not %s)",
                row.id,
                reason,
                extra={"session": row.id, "event": "lease_lost"},
            )
            return
        self.metrics.sessions_stopped.labels(str(reason)).inc()
        log.info(
            "session %s stopped: %s",
            row.id,
            reason,
            extra={"session": row.id, "event": "stopped", "reason": str(reason)},
        )
