"""How long a session lives, and the words for why it ended.

A session ends for exactly one :class:`StopReason`, recorded in its row (``stop_reason``) and
shown in words on the viewer page (:data:`DESCRIPTIONS`). docs/api.md has the same table.

:class:`Lifetime` holds a session's clocks: ``idle_timeout`` seconds after the last activity
(speak, interrupt, keep-alive, background change, or the avatar speaking) the session stops;
``max_duration`` seconds after it started it stops whatever happens.
"""

from __future__ import annotations

import time
from enum import StrEnum


class StopReason(StrEnum):
    STOPPED_BY_USER = "stopped_by_user"
    IDLE_TIMEOUT = "idle_timeout"
    MAX_DURATION = "max_duration"
    ROOM_CLOSED = "room_closed"
    AVATAR_STOPPED = "avatar_stopped"
    COMPOSITOR_FAILED = "compositor_failed"
    LIVEKIT_UNREACHABLE = "livekit_unreachable"
    SERVICE_STOPPED = "service_stopped"
    SERVICE_RESTARTED = "service_restarted"
    START_FAILED = "start_failed"


DESCRIPTIONS: dict[str, str] = {
    StopReason.STOPPED_BY_USER: "the session was stopped through the API",
    StopReason.IDLE_TIMEOUT: "nobody used the session for its idle timeout",
    StopReason.MAX_DURATION: "the session reached its maximum duration",
    StopReason.ROOM_CLOSED: "the LiveKit room was closed or deleted",
    StopReason.AVATAR_STOPPED: "the avatar left on its own",
    StopReason.COMPOSITOR_FAILED: "the background compositor failed",
    StopReason.LIVEKIT_UNREACHABLE: "the LiveKit server stopped answering",
    StopReason.SERVICE_STOPPED: "the Greenroom service shut down",
    StopReason.SERVICE_RESTARTED: "the Greenroom service restarted and lost the session",
    StopReason.START_FAILED: "the session could not start",
}


def describe(code: str | None, error: str | None = None) -> str | None:
    """A sentence for a stop reason, with the code kept visible for people who search it."""
    if not code:
        return error
    text = DESCRIPTIONS.get(code, code.replace("_", " "))
    if error:
        text = f"{text}: {error}"
    return f"{text} ({code})"


class Lifetime:
    """A session's idle and maximum-duration clocks (monotonic seconds)."""

    def __init__(self, idle_timeout: float, max_duration: float | None = None) -> None:
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self.started = time.monotonic()
        self.last_activity = self.started

    def touch(self) -> None:
        """Activity: the idle clock starts again."""
        self.last_activity = time.monotonic()

    def idle_seconds(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.last_activity

    def time_left(self, now: float | None = None) -> tuple[float, StopReason]:
        """Seconds until the session ends by itself, and the reason it will end for."""
        now = time.monotonic() if now is None else now
        left = self.idle_timeout - (now - self.last_activity)
        why = StopReason.IDLE_TIMEOUT
        if self.max_duration is not None:
            to_max = self.max_duration - (now - self.started)
            if to_max <= left:
                left, why = to_max, StopReason.MAX_DURATION
        return left, why


def room_timeout(default: int, idle_timeout: float, max_duration: float | None) -> int:
    """``empty_timeout``/``departure_timeout`` for a session's room: never shorter than the
    session may live, so LiveKit does not close the room under it (avatar and compositor
    join as agents, which LiveKit does not count as occupants)."""
    return int(max(default, idle_timeout, max_duration or 0))
