"""The LiveKit RoomService calls the session service makes: rooms it owns, and health.

Greenroom owns the lifetime of the rooms it creates. Avatar and compositor join as kind
``agent``, and LiveKit closes a room with only agents in it after ``empty_timeout`` (no
person ever joined) or ``departure_timeout`` (the last person left). So a session's room is
created through the API with both timeouts at least as long as the session may live, and
deleted when the session stops.

The room is also where lip-sync is set: ``min_playout_delay`` asks every receiver of its
video (the compositor, then each viewer) to hold the picture as long as its audio jitter
buffer holds the voice. LiveKit does not report a room's playout delay, so a room someone
else created keeps whatever they gave it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp
from livekit import api as lkapi

from greenroom.config import VIDEO_PLAYOUT_DELAY_MAX_MS, Settings
from greenroom.errors import GreenroomError

log = logging.getLogger("greenroom.sessions")

API_TIMEOUT = 10.0  # seconds one RoomService call may take


class LiveKitUnreachable(GreenroomError):
    code = "livekit_unreachable"
    status = 503


@dataclass
class RoomReady:
    """The outcome of :meth:`Rooms.ensure`."""

    created: bool  # Greenroom created it: it deletes it when the session stops
    warnings: list[str] = field(default_factory=list)


class Rooms:
    """RoomService calls over one lazily opened client."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._api: lkapi.LiveKitAPI | None = None

    def client(self) -> lkapi.LiveKitAPI:
        """The LiveKit server API client (opened on first use, closed by :meth:`aclose`)."""
        if self._api is None:
            self._api = lkapi.LiveKitAPI(
                url=self.settings.livekit_url,
                api_key=self.settings.livekit_api_key,
                api_secret=self.settings.livekit_api_secret.get_secret_value(),
                timeout=aiohttp.ClientTimeout(total=API_TIMEOUT),
            )
        return self._api

    async def find(self, room: str) -> lkapi.Room | None:
        """The room as LiveKit reports it, or None.

        Raises:
            LiveKitUnreachable: the server did not answer.
        """
        try:
            res = await self.client().room.list_rooms(lkapi.ListRoomsRequest(names=[room]))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LiveKitUnreachable(
                f"the LiveKit server at {self.settings.livekit_url} did not answer: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return next((r for r in res.rooms if r.name == room), None)

    async def ensure(self, room: str, timeout: int) -> RoomReady:
        """Create ``room`` with ``timeout`` as its empty and departure timeouts, unless it
        exists; an existing room with shorter timeouts is kept and reported in ``warnings``.
        """
        existing = await self.find(room)
        if existing is None:
            delay = self.settings.video_playout_delay_ms
            await self.client().room.create_room(
                lkapi.CreateRoomRequest(
                    name=room,
                    empty_timeout=timeout,
                    departure_timeout=timeout,
                    min_playout_delay=delay,
                    max_playout_delay=VIDEO_PLAYOUT_DELAY_MAX_MS if delay else 0,
                )
            )
            return RoomReady(created=True)
        warnings = []
        timeouts = {
            "empty_timeout": existing.empty_timeout,
            "departure_timeout": existing.departure_timeout,
        }
        for name, value in timeouts.items():
            if 0 < value < timeout:  # 0: the server's default, which we cannot read
                warnings.append(
                    f"room {room!r} exists with {name} {value} s, shorter than this session "
                    f"may live ({timeout} s): LiveKit may close it early (stop_reason "
                    "room_closed); create it with longer timeouts, or let Greenroom create it"
                )
        return RoomReady(created=False, warnings=warnings)

    async def delete(self, room: str) -> None:
        """Delete ``room``; a room that is already gone is fine."""
        try:
            await self.client().room.delete_room(lkapi.DeleteRoomRequest(room=room))
        except lkapi.TwirpError as exc:
            if exc.code != lkapi.TwirpErrorCode.NOT_FOUND:
                raise

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None
