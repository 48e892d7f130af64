"""Connection supervision: the compositor's room, joined, watched and rejoined.

A compositor started on its own (``Compositor.start``) joins with a token of its own and,
when the connection drops for good, rejoins with backoff. One that is attached to a room
somebody else connected (a LiveKit Agents job, ``Compositor.attach``) leaves reconnecting
to the owner and ends when that room does. Either way ``on_join(room)`` sets the room up
after each join and ``on_leave(room)`` takes it down before each leave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from livekit import rtc

from greenroom.compositor.options import CompositorOptions
from greenroom.compositor.video import bounded, within

logger = logging.getLogger("greenroom.compositor")

CONNECT_TIMEOUT = 30.0  # s for one join (signal + media), on top of the SDK's own timeout

# A room that ends like this is not coming back: end the session instead of rejoining.
FINAL_REASONS = {
    rtc.DisconnectReason.CLIENT_INITIATED,
    rtc.DisconnectReason.DUPLICATE_IDENTITY,
    rtc.DisconnectReason.PARTICIPANT_REMOVED,
    rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.ROOM_CLOSED,  # e.g. everyone else left (agents do not keep a room)
}

RoomHook = Callable[[rtc.Room], Awaitable[None]]


class RoomLink:
    """Owns which room the compositor is in, and what happens when it goes away."""

    def __init__(
        self, options: CompositorOptions, session: str, on_join: RoomHook, on_leave: RoomHook
    ) -> None:
        self.room: rtc.Room | None = None
        self._options = options
        self._session = session
        self._on_join = on_join
        self._on_leave = on_leave
        self._url = ""
        self._token: Callable[[], str] | None = None  # set by join: the link owns its rooms
        self._disconnected = asyncio.Event()
        self._reason: rtc.DisconnectReason.ValueType = rtc.DisconnectReason.UNKNOWN_REASON

    @property
    def owns_room(self) -> bool:
        return self._token is not None

    async def join(self, url: str, token: Callable[[], str]) -> None:
        """Connect with a fresh token from ``token()``; rejoins use it again.

        Raises:
            rtc.ConnectError, TimeoutError: LiveKit refused or did not answer.
        """
        self._url, self._token = url, token
        await self._connect()

    async def adopt(self, room: rtc.Room) -> None:
        """Use ``room``, connected by somebody else (who also reconnects it)."""
        await self._setup(room)

    async def supervise(self) -> str:
        """Run until the room is gone for good; returns why (the session's end reason)."""
        if not self.owns_room:
            await self._disconnected.wait()
            return f"room disconnected ({rtc.DisconnectReason.Name(self._reason)})"
        lo, hi = self._options.reconnect_backoff
        while True:
            await self._disconnected.wait()
            if self._reason in FINAL_REASONS:
                return f"disconnected by LiveKit ({rtc.DisconnectReason.Name(self._reason)})"
            logger.warning(
                "compositor lost its connection; rejoining", extra={"session": self._session}
            )
            await self.leave()
            pause, last_error = lo, "no attempt"
            for attempt in range(1, self._options.reconnect_attempts + 1):
                await asyncio.sleep(pause)
                try:
                    await self._connect()
                except Exception as exc:  # any failure means "try again"
                    last_error = f"{type(exc).__name__}: {exc}"
                    logger.warning(
                        "rejoin attempt %d failed: %s",
                        attempt,
                        last_error,
                        extra={"session": self._session},
                    )
                    pause = min(pause * 2, hi)
                    continue
                logger.info("compositor rejoined", extra={"session": self._session})
                break
            else:
                attempts = self._options.reconnect_attempts
                return f"could not rejoin after {attempts} attempts ({last_error})"

    async def leave(self) -> None:
        """Take the room down (``on_leave``) and disconnect it if it is ours. Bounded."""
        room, self.room = self.room, None
        if room is None:
            return
        room.off("disconnected", self._on_disconnected)
        try:
            await self._on_leave(room)
        finally:
            if self.owns_room:
                await bounded(room.disconnect())

    async def _connect(self) -> None:
        assert self._token is not None
        room = rtc.Room()
        options = rtc.RoomOptions(auto_subscribe=False, dynacast=self._options.dynacast)
        try:
            await within(room.connect(self._url, self._token(), options), CONNECT_TIMEOUT)
        except BaseException:
            await bounded(room.disconnect())  # a join that finished late must not linger
            raise
        self._disconnected.clear()
        await self._setup(room)

    async def _setup(self, room: rtc.Room) -> None:
        self.room = room
        room.on("disconnected", self._on_disconnected)
        try:
            await self._on_join(room)
        except BaseException:
            await self.leave()  # a half-set-up room is not kept (or leaked by a rejoin)
            raise

    def _on_disconnected(
        self, reason: rtc.DisconnectReason.ValueType = rtc.DisconnectReason.UNKNOWN_REASON
    ) -> None:
        self._reason = reason
        self._disconnected.set()
