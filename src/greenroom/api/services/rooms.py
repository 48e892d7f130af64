"""The LiveKit RoomService calls the session manager makes."""

from __future__ import annotations

from livekit import api as lkapi

from greenroom.config import Settings


class Rooms:
    """The LiveKit RoomService calls Greenroom makes (deleting the rooms it named)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._api: lkapi.LiveKitAPI | None = None

    def _client(self) -> lkapi.LiveKitAPI:
        if self._api is None:
            self._api = lkapi.LiveKitAPI(
                url=self.settings.livekit_url,
                api_key=self.settings.livekit_api_key,
                api_secret=self.settings.livekit_api_secret.get_secret_value(),
            )
        return self._api

    async def delete(self, room: str) -> None:
        """Delete ``room``; a room that is already gone is fine."""
        try:
            await self._client().room.delete_room(lkapi.DeleteRoomRequest(room=room))
        except lkapi.TwirpError as exc:
            if exc.code != lkapi.TwirpErrorCode.NOT_FOUND:
                raise

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None
