"""What the session service needs from the parts it runs, as types.

The service drives two objects per session: an avatar (:class:`AvatarSession`, from
``greenroom.avatars``) and a compositor. :class:`SessionCompositor` names the part of
``greenroom.compositor.Compositor`` the service uses, so the service depends on that
contract and not on the compositor's insides (and a test double can stand in for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from greenroom.avatars.base import AvatarSession

if TYPE_CHECKING:  # the backgrounds package loads the frame kernels: only for the checker
    from greenroom.backgrounds.spec import BackgroundSpec

__all__ = ["STOP_REQUESTED", "AvatarSession", "BackgroundResolver", "SessionCompositor"]

STOP_REQUESTED = "stop requested: "
"""How a compositor's close reason starts when it ended because a stop was asked of it (by
another replica, for a dispatched job); the session's stop reason follows, e.g.
``stop requested: stopped_by_user``."""

BackgroundResolver: TypeAlias = "Callable[[object], BackgroundSpec]"
"""Maps a background value sent over the compositor's RPC to a spec; raises to refuse it."""


@runtime_checkable
class SessionCompositor(Protocol):
    """A running compositor in a session's room."""

    identity: str  # the compositor's participant identity

    @property
    def background(self) -> BackgroundSpec:
        """The background in use (it may have been switched over the LiveKit RPC)."""
        ...

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        """The screen colour the keyer uses, once it knows it."""
        ...

    @property
    def closed(self) -> bool: ...

    async def set_background(
        self, spec: BackgroundSpec, transition: float | None = None
    ) -> BackgroundSpec:
        """Switch with a crossfade; raises ``InvalidInput`` and keeps the picture on error."""
        ...

    def metrics(self) -> dict[str, object]: ...

    def snapshot_png(self) -> bytes | None:
        """The latest published frame as PNG (blocking: call it in a thread)."""
        ...

    async def wait_first_frame(self, timeout: float = 10.0) -> None: ...

    def on_close(self, callback: Callable[[str], object]) -> None:
        """``callback(reason)`` once the compositor ends, by itself or by ``aclose``."""
        ...

    async def aclose(self) -> None: ...
