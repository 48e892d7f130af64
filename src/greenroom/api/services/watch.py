"""Watching a running session: its first frame, its clocks, LiveKit's health, and its parts
ending on their own. Every way a session ends by itself goes through here and ends in one
call to ``stop(session_id, reason, error)`` with a truthful :class:`~.lifetime.StopReason`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from greenroom.api.metrics import Metrics
from greenroom.api.services.contracts import STOP_REQUESTED
from greenroom.api.services.lifetime import StopReason, room_timeout
from greenroom.api.services.live import LiveSession
from greenroom.api.services.rooms import LiveKitUnreachable, Rooms
from greenroom.config import Settings
from greenroom.errors import GreenroomError
from greenroom.store import Repo

log = logging.getLogger("greenroom.sessions")

FIRST_FRAME_TIMEOUT = 30.0
SETTLE = 1.0  # s to wait after the avatar ends before asking LiveKit why (its close is racy)
LIVEKIT_CHECK = 5.0  # s between checks that the LiveKit server still answers
# The compositor's close reason names LiveKit's disconnect reason when LiveKit ended it.
ROOM_GONE = ("ROOM_DELETED", "ROOM_CLOSED")

Stop = Callable[[str, str, str | None], Awaitable[object]]


class SessionWatch:
    """Starts the watchers of a session and turns a part's end into a stop with a reason."""

    def __init__(
        self, settings: Settings, repo: Repo, rooms: Rooms, metrics: Metrics, stop: Stop
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.rooms = rooms
        self.metrics = metrics
        self._stop = stop
        self.closing = False  # the service is shutting down: parts end because we end them

    def start(self, live: LiveSession, text: str | None, *, adopted: bool = False) -> None:
        """Watch ``live``; ``text`` is spoken after the first frame. ``adopted``: a session
        taken over from another replica, whose first frame is long past."""
        sid = live.id
        live.avatar.on_state(lambda state: self._on_avatar_state(live, str(state)))
        live.compositor.on_close(lambda why: self._on_compositor_closed(live, why))
        if not adopted:
            live.spawn(self._after_first_frame(live, text))
        live.spawn(self._watch_clock(live))
        live.spawn(self._watch_livekit(live))
        log.debug("session %s watched", sid)

    async def _stop_quietly(self, sid: str, reason: str, error: str | None = None) -> None:
        try:
            await self._stop(sid, reason, error)
        except GreenroomError as exc:  # already stopping, or stopped meanwhile
            log.debug("session %s: %s", sid, exc.message)

    async def _after_first_frame(self, live: LiveSession, text: str | None) -> None:
        try:
            await live.compositor.wait_first_frame(FIRST_FRAME_TIMEOUT)
        except Exception as exc:
            log.warning("session %s: no composited frame yet: %s", live.id, exc)
            return
        elapsed = time.monotonic() - live.requested
        self.metrics.first_frame.observe(elapsed)
        ms = round(elapsed * 1000, 1)
        await asyncio.to_thread(self.repo.update_session, live.id, first_frame_ms=ms)
        log.info(
            "session %s: first composited frame after %.0f ms",
            live.id,
            ms,
            extra={"session": live.id, "event": "first_frame", "ms": ms},
        )
        if text:
            try:
                await live.avatar.speak(text, mode="repeat")
            except GreenroomError as exc:
                log.warning("session %s: opening text refused: %s", live.id, exc.message)

    async def _watch_clock(self, live: LiveSession) -> None:
        """Stop at the idle timeout or the maximum duration; speech counts as activity."""
        while not live.stopping:
            if str(live.avatar.state) == "speaking":
                live.touch()
            left, why = live.lifetime.time_left()
            if left <= 0:
                log.info("session %s: %s reached, stopping", live.id, why)
                await self._stop_quietly(live.id, why)
                return
            await asyncio.sleep(min(left, 1.0))

    async def _watch_livekit(self, live: LiveSession) -> None:
        """Stop when the LiveKit server has not answered for ``livekit_unreachable_timeout``.

        After a LiveKit restart the room is re-created by the first participant to rejoin,
        with the server's default timeouts. LiveKit offers no call that changes a live room's
        timeouts (``CreateRoom`` on an existing room keeps them), so a session whose room now
        has timeouts shorter than it may live is logged once with a warning (docs/api.md)."""
        limit = self.settings.livekit_unreachable_timeout
        failing_since: float | None = None
        warned = False
        while not live.stopping:
            await asyncio.sleep(min(LIVEKIT_CHECK, limit / 3))
            try:
                room = await self.rooms.find(live.room)
                if room is not None and not warned:
                    warned = self._warn_short_room(live, room.empty_timeout, room.departure_timeout)
                failing_since = None
            except LiveKitUnreachable as exc:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= limit:
                    log.warning("session %s: %s", live.id, exc.message)
                    await self._stop_quietly(live.id, StopReason.LIVEKIT_UNREACHABLE)
                    return

    def _warn_short_room(self, live: LiveSession, empty: int, departure: int) -> bool:
        """Log (and return True) if the room's timeouts are shorter than the session may live;
        0 is the server's default, which cannot be read."""
        need = room_timeout(
            self.settings.room_timeout, live.lifetime.idle_timeout, live.lifetime.max_duration
        )
        short = 0 < min(empty, departure) < need
        if short:
            log.warning(
                "session %s: room %s has empty_timeout %d s and "
                "departure_timeout %d s, shorter than the session may live (%d s); LiveKit may "
                "close it early (stop_reason room_closed)",
                live.id,
                live.room,
                empty,
                departure,
                need,
                extra={"session": live.id, "event": "room_timeouts"},
            )
        return short

    def _on_avatar_state(self, live: LiveSession, state: str) -> None:
        if state == "stopped" and not (live.stopping or self.closing):
            live.spawn(self._ended(live, StopReason.AVATAR_STOPPED))

    def _on_compositor_closed(self, live: LiveSession, why: str) -> None:
        if live.stopping or self.closing:
            return
        if why.startswith(STOP_REQUESTED):  # another replica stopped it, with this reason
            asked = why.removeprefix(STOP_REQUESTED)
            reason = asked if asked in set(StopReason) else StopReason.STOPPED_BY_USER
            live.spawn(self._stop_quietly(live.id, reason))
            return
        live.compositor_ended = why
        live.spawn(self._ended(live, StopReason.COMPOSITOR_FAILED))

    async def _ended(self, live: LiveSession, default: StopReason) -> None:
        """A part ended by itself: find out why (the room closed? LiveKit gone?) and stop."""
        if live.compositor_ended is None:
            await asyncio.sleep(SETTLE)  # the compositor may yet say that the room closed
        ended = live.compositor_ended or ""
        reason = default
        if any(name in ended for name in ROOM_GONE):
            reason = StopReason.ROOM_CLOSED
        else:
            try:
                if await self.rooms.find(live.room) is None:
                    reason = StopReason.ROOM_CLOSED
            except LiveKitUnreachable:
                reason = StopReason.LIVEKIT_UNREACHABLE
        error = ended if reason == StopReason.COMPOSITOR_FAILED else None
        log.info("session %s ended by itself: %s %s", live.id, reason, ended)
        await self._stop_quietly(live.id, reason, error)
