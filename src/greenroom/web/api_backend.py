"""The default :class:`~greenroom.web.backend.ViewerBackend`: the API's own services.

It reads sessions through the API's ``SessionManager``, lists and fills the same background
library as ``/v1/backgrounds``, and forwards speak/interrupt to the running session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI

from greenroom.api.services.lifetime import describe
from greenroom.api.services.live import StartRequest
from greenroom.errors import ConfigError, GreenroomError
from greenroom.web.backend import ViewerBackground, ViewerSession

if TYPE_CHECKING:
    from greenroom.api.deps import Services


def describe_reason(code: str | None, error: str | None = None) -> str | None:
    """A sentence for a stop reason code (see ``api.services.lifetime``)."""
    return describe(code, error)


class ApiBackend:
    """Viewer operations over ``app.state.services`` (see ``greenroom.api.deps.Services``)."""

    def __init__(self, services: Services):
        self.services = services

    @classmethod
    def from_app(cls, app: FastAPI) -> ApiBackend:
        services = getattr(app.state, "services", None)
        if services is None:
            raise ConfigError("the viewer needs the Greenroom API app (create_app)")
        return cls(services)

    async def session(self, session_id: str) -> ViewerSession:
        view = await self.services.sessions.get(session_id)  # NotFound for unknown ids
        metrics = view.get("metrics") or None
        return ViewerSession(
            session_id=view["session_id"],
            status=view["status"],
            room=view["room"],
            ended_reason=describe_reason(view.get("stop_reason"), view.get("error")),
            stop_reason=view.get("stop_reason"),
            time_left=view.get("time_left"),
            time_left_reason=view.get("time_left_reason"),
            can_restart=self.services.settings.viewer_can_restart,
            video_playout_delay_ms=self.services.settings.video_playout_delay_ms,
            compositor_identity=view.get("compositor_identity"),
            avatar_identity=view.get("avatar_identity"),
            background=view.get("background"),
            metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)}
            if metrics
            else None,
        )

    async def backgrounds(self) -> list[ViewerBackground]:
        lib = self.services.library
        return [
            ViewerBackground(
                id=row.id,
                name=row.name,
                kind=row.kind,
                spec=row.id,  # the compositor resolves library ids; paths stay on the server
                thumbnail=lib.root / row.thumbnail_name,
            )
            for row in self.services.repo.list_backgrounds()
        ]

    async def upload_background(
        self, content_type: str | None, content_length: str | None, body: AsyncIterator[bytes]
    ) -> ViewerBackground:
        from greenroom.api.services.uploads import add_to_library

        lib = self.services.library
        row = await add_to_library(lib, self.services.repo, content_type, content_length, body)
        return ViewerBackground(
            id=row.id,
            name=row.name,
            kind=row.kind,
            spec=row.id,  # the compositor resolves library ids; paths stay on the server
            thumbnail=lib.root / row.thumbnail_name,
        )

    async def speak(self, session_id: str, text: str, mode: str) -> None:
        await self.services.sessions.speak(session_id, text, mode)

    async def interrupt(self, session_id: str) -> None:
        await self.services.sessions.interrupt(session_id)

    async def restart(self, session_id: str) -> str:
        if not self.services.settings.viewer_can_restart:
            raise GreenroomError(
                "starting sessions from the viewer is off here (GREENROOM_VIEWER_CAN_RESTART)",
                code="forbidden",
                status=403,
            )
        view = await self.services.sessions.get(session_id)
        started = await self.services.sessions.start(
            StartRequest(template_id=str(view["template_id"]), caller="viewer")
        )
        return started.viewer_url
