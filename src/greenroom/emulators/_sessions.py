"""What both emulators share: session bookkeeping, idle/max-duration watchdogs, the backend seam.

The *backend* is what actually puts an avatar in a room. The real one is
:class:`greenroom.emulators.backend.LocalBackend` (Greenroom's built-in LocalAvatar); the seam
exists so the HTTP surface can be exercised without a LiveKit server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

DataCallback = Callable[[bytes, str | None, str], None]  # payload, topic, sender identity


class EmulatedAvatar(Protocol):
    """An avatar the emulator controls, already in its room."""

    identity: str

    async def say(self, text: str) -> float:
        """Speak ``text`` (queued); returns the speech's duration in seconds."""
        ...

    async def push_pcm(self, pcm: bytes, sample_rate: int) -> None:
        """Append mono PCM16 speech audio to the current utterance."""
        ...

    async def end_pcm(self) -> None:
        """The current utterance is complete."""
        ...

    async def interrupt(self) -> None: ...

    def is_speaking(self) -> bool: ...

    async def publish_data(self, payload: bytes, topic: str | None = None) -> None: ...

    def on_data(self, callback: DataCallback) -> None: ...

    def on_speaking(self, callback: Callable[[bool], None]) -> None:
        """Called with True when speech starts and False when it ends."""
        ...

    async def aclose(self) -> None: ...


class AvatarBackend(Protocol):
    async def join(
        self, *, url: str, token: str, avatar_id: str, voice: str | None, identity: str
    ) -> EmulatedAvatar:
        """Start an avatar and join it to ``url`` with ``token``."""
        ...


@dataclass
class EmuSession:
    """One vendor session inside an emulator."""

    id: str
    avatar_id: str
    created_at: float = field(default_factory=time.time)
    status: str = "new"  # new -> connecting -> connected -> closed
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    idle_timeout: float | None = None
    max_duration: float | None = None
    last_activity: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    avatar: EmulatedAvatar | None = None
    stop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    watchdog: asyncio.Task[None] | None = None
    on_close: list[Callable[[str], Awaitable[None] | None]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status in {"new", "connecting", "connected"}

    def touch(self) -> None:
        self.last_activity = time.monotonic()


class SessionBook:
    """All sessions of one emulator, with the concurrency count the vendor enforces."""

    def __init__(self) -> None:
        self.sessions: dict[str, EmuSession] = {}

    def live_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.status in {"connecting", "connected"})

    def add(self, session: EmuSession) -> None:
        self.sessions[session.id] = session

    def get(self, session_id: str) -> EmuSession | None:
        return self.sessions.get(session_id)

    async def close(self, session: EmuSession, reason: str) -> None:
        """Stop the avatar and mark the session closed; idempotent."""
        if session.status == "closed":
            return
        session.status = "closed"
        session.stop_reason = reason
        task = session.watchdog
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        for cb in list(session.on_close):
            try:
                result = cb(reason)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("emulator session close callback failed")
        if session.avatar is not None:
            avatar, session.avatar = session.avatar, None
            with contextlib.suppress(Exception):
                await avatar.aclose()
        log.info("emulated session %s closed (%s)", session.id, reason)

    def watch(
        self, session: EmuSession, *, idle_reason: str, max_reason: str, poll: float = 0.5
    ) -> None:
        """Close ``session`` after ``idle_timeout`` without activity or at ``max_duration``."""

        async def run() -> None:
            started = time.monotonic()
            while session.live:
                await asyncio.sleep(poll)
                now = time.monotonic()
                speaking = session.avatar is not None and session.avatar.is_speaking()
                if speaking:
                    session.touch()
                if session.max_duration and now - started >= session.max_duration:
                    await self.close(session, max_reason)
                elif session.idle_timeout and now - session.last_activity >= session.idle_timeout:
                    await self.close(session, idle_reason)

        session.watchdog = asyncio.get_running_loop().create_task(run())

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session, "shutdown")


_BACKGROUND: set[asyncio.Task[Any]] = set()


def background(
    coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Run ``coro`` as a task that is kept referenced until it finishes."""
    task = (loop or asyncio.get_running_loop()).create_task(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
