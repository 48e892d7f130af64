"""What the viewer pages need from the rest of Greenroom, behind one small interface.

The viewer's endpoints (:mod:`greenroom.web.router`) talk to a :class:`ViewerBackend`;
:func:`get_backend` finds it on ``app.state.viewer_backend`` or builds the default one over
the API's session manager, store and background library. Nothing here imports FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ViewerSession:
    """What a viewer may know about its session (no tokens, no keys)."""

    session_id: str
    status: str  # starting | started | stopped | failed
    room: str
    ended_reason: str | None = None  # why it ended, in words (the code in brackets)
    compositor_identity: str | None = None
    avatar_identity: str | None = None
    background: str | None = None
    metrics: dict[str, float] | None = None
    # added later: keep them last, callers may pass the fields above by position
    stop_reason: str | None = None  # the code alone (docs/api.md lists them)
    time_left: float | None = None  # seconds until it stops by itself, while running
    time_left_reason: str | None = None  # idle_timeout | max_duration
    can_restart: bool = False  # the page may offer to start a new session (the demo)
    video_playout_delay_ms: int = 0  # the room's lip-sync delay; the page holds video as long

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "ended_reason": self.ended_reason,
            "stop_reason": self.stop_reason,
            "time_left": self.time_left,
            "time_left_reason": self.time_left_reason,
            "can_restart": self.can_restart,
            "video_playout_delay_ms": self.video_playout_delay_ms,
            "room": self.room,
            "compositor_identity": self.compositor_identity,
            "avatar_identity": self.avatar_identity,
            "background": self.background,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class ViewerBackground:
    """A library background as the picker shows it; ``spec`` goes into the RPC as is."""

    id: str
    name: str
    kind: str  # image | video
    spec: str
    thumbnail: Path | None = field(default=None, repr=False)

    def to_json(self, session_id: str) -> dict[str, Any]:
        thumb = (
            f"/viewer/{session_id}/api/backgrounds/{self.id}/thumbnail" if self.thumbnail else None
        )
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "spec": self.spec,
            "thumbnail_url": thumb,
        }


class ViewerBackend(Protocol):
    """The operations behind the viewer's token-authenticated endpoints."""

    async def session(self, session_id: str) -> ViewerSession:
        """Raises ``NotFound`` for an unknown id."""
        ...

    async def backgrounds(self) -> list[ViewerBackground]: ...

    async def upload_background(
        self, content_type: str | None, content_length: str | None, body: AsyncIterator[bytes]
    ) -> ViewerBackground:
        """Store a ``multipart/form-data`` upload (part ``file``), validated by decoding it.

        Raises ``InvalidInput`` (field ``file``) or ``TooLarge``.
        """
        ...

    async def speak(self, session_id: str, text: str, mode: str) -> None: ...

    async def interrupt(self, session_id: str) -> None: ...

    async def restart(self, session_id: str) -> str:
        """Start a new session like ``session_id`` (same template); returns its viewer URL.

        Raises ``Forbidden`` where the page may not offer this (outside the demo).
        """
        ...
