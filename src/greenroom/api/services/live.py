"""The in-memory side of a session: what one start request asks for, what it returns, and
the objects a running session holds."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime

from greenroom.api.services.contracts import AvatarSession, SessionCompositor
from greenroom.api.services.lifetime import Lifetime
from greenroom.store.models import SessionRow


@dataclass
class StartRequest:
    template_id: str
    voice_id: str | None = None
    text: str | None = None
    livekit_room: str | None = None
    livekit_identity: str | None = None
    idle_timeout: int | None = None  # None: the template's
    max_duration: int | None = None  # None: the template's (which may be None: no limit)
    caller: str = "default"  # who asks (an API key's id): the per-key session limit counts it


@dataclass
class StartedSession:
    row: SessionRow
    livekit_url: str
    access_token: str
    access_token_expires_at: datetime
    viewer_url: str
    warnings: list[str] = field(default_factory=list)


class LiveSession:
    """A session this process runs: its avatar, its compositor, its clocks and its tasks."""

    def __init__(
        self,
        row: SessionRow,
        avatar: AvatarSession,
        compositor: SessionCompositor,
        lifetime: Lifetime,
        *,
        requested: float,
    ) -> None:
        self.id = row.id
        self.room = row.room
        self.room_created = row.room_created
        self.background = row.background  # the canonical value in use (API form)
        self.avatar = avatar
        self.compositor = compositor
        self.lifetime = lifetime
        self.requested = requested  # monotonic time the start was asked for
        self.compositor_ended: str | None = None  # the compositor's own reason, once it ended
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()

    def touch(self) -> None:
        self.lifetime.touch()

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run ``coro`` for this session; it is cancelled when the session stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
