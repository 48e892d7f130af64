"""The provider interface every avatar implements, and the registry that finds them.

An avatar *provider* (``local``, ``file``, ``liveavatar``, ``heygen``, ``attach``) starts an
:class:`AvatarSession`: a participant in a LiveKit room that publishes the avatar's raw video
(usually on a green screen) and audio. The compositor subscribes to ``session.identity``.

A provider module registers itself when imported::

    from greenroom.avatars.base import register_provider
    register_provider("heygen", HeyGenProvider())

``get_provider(name)`` imports the built-in module for ``name`` on first use, so importing
``greenroom.avatars`` stays cheap and a missing optional vendor never breaks the others.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from greenroom.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

SpeakMode = Literal["repeat", "talk"]
SPEAK_MODES: tuple[str, ...] = get_args(SpeakMode)

#: Participant attribute each avatar keeps at its current :class:`AvatarState` value.
STATE_ATTRIBUTE = "greenroom.avatar.state"
#: Longest text one ``speak`` call accepts (longer text is chunked by the provider, not refused).
MAX_TEXT_CHARS = 100_000


JOB_AVATARS = frozenset({"local"})
"""Providers whose avatar a dispatched compositor job runs itself, beside the compositor
(``GREENROOM_COMPOSITOR=dispatch``): the built-in avatar. Vendor avatars are HTTP sessions
the service holds."""


class AvatarState(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    SPEAKING = "speaking"
    STOPPED = "stopped"


@dataclass(frozen=True)
class RoomTarget:
    """Where an avatar (or the compositor) joins: a LiveKit server, its keys and a room."""

    url: str
    api_key: str
    api_secret: str = field(repr=False)
    room: str

    def agent_token(
        self, identity: str, *, name: str | None = None, attributes: dict[str, str] | None = None
    ) -> str:
        """A kind-``agent`` token for ``identity`` in this room (publish, subscribe, attributes)."""
        from greenroom.tokens import agent_token

        return agent_token(
            self.api_key,
            self.api_secret,
            room=self.room,
            identity=identity,
            name=name,
            attributes=attributes,
        )

    @classmethod
    def from_settings(cls, settings: Any, room: str) -> RoomTarget:
        """The configured LiveKit server (``greenroom.config.Settings``) and ``room``."""
        return cls(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret.get_secret_value(),
            room=room,
        )


StateCallback = Callable[[AvatarState], None]


@dataclass(frozen=True)
class VendorSessionRef:
    """Enough to stop a paid vendor session later, even from another process.

    A vendor provider hands one to ``start(..., on_vendor_session=callback)`` the moment the
    vendor names the session, before anything else can fail, so that a caller who stores it
    (``dataclasses.asdict``) can stop the session after a crash with :func:`stop_vendor_session`.

    Attributes:
        vendor: the provider name (``"liveavatar"``, ``"heygen"``).
        session_id: the vendor's session id.
        stop_token: a session-scoped credential the vendor wants for stopping it (LiveAvatar's
            session token); None when the account key suffices (HeyGen). Treat it as a secret.
    """

    vendor: str
    session_id: str
    stop_token: str | None = field(default=None, repr=False)


VendorSessionCallback = Callable[[VendorSessionRef], Awaitable[None] | None]


@runtime_checkable
class AvatarSession(Protocol):
    """A running avatar in a room. All methods are safe to call in any state after start."""

    provider: str
    identity: str  # the participant identity the compositor subscribes to
    state: AvatarState

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        """Queue ``text``; returns once accepted (not when spoken). Bad text: InvalidInput."""
        ...

    async def interrupt(self) -> None:
        """Stop speaking now and drop everything queued."""
        ...

    async def keep_alive(self) -> None:
        """Tell the provider the session is still wanted (vendors time idle sessions out)."""
        ...

    async def aclose(self) -> None:
        """Leave the room and release everything; idempotent."""
        ...

    def on_state(self, callback: StateCallback) -> None:
        """Call ``callback(state)`` on every state change (on the event loop)."""
        ...


class Provider(Protocol):
    """Starts sessions of one kind of avatar."""

    name: str

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str,
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        settings: Any = None,
        **options: Any,
    ) -> AvatarSession:
        """``settings`` (a :class:`~greenroom.config.Settings`) carries vendor credentials and
        URLs; providers that need none ignore it."""
        ...


@runtime_checkable
class VendorProvider(Provider, Protocol):
    """A provider whose sessions are paid vendor sessions that can be stopped by reference."""

    async def stop_session(self, ref: VendorSessionRef, *, settings: Any = None) -> bool:
        """Stop the vendor session ``ref``; False if the vendor says it had already ended."""
        ...


class StateEmitter:
    """Small helper for sessions: holds ``state`` and calls ``on_state`` callbacks on change."""

    state: AvatarState

    def __init__(self) -> None:
        self.state = AvatarState.STARTING
        self._state_callbacks: list[StateCallback] = []

    def on_state(self, callback: StateCallback) -> None:
        self._state_callbacks.append(callback)

    def _set_state(self, state: AvatarState) -> bool:
        """Set the state; returns True if it changed (callbacks ran)."""
        if state == self.state:
            return False
        self.state = state
        for cb in list(self._state_callbacks):
            try:
                cb(state)
            except Exception:  # a listener's bug must not stop the avatar
                log.exception("avatar state callback failed")
        return True


def check_speech(text: object, mode: object = "repeat") -> str:
    """Validate ``speak`` arguments; returns the stripped text or raises InvalidInput."""
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", field="text")
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("text is empty: give the avatar something to say", field="text")
    if len(stripped) > MAX_TEXT_CHARS:
        raise InvalidInput(
            f"text is {len(stripped)} characters; at most {MAX_TEXT_CHARS} per call", field="text"
        )
    if mode not in SPEAK_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SPEAK_MODES)}", field="mode")
    return stripped


PROVIDERS: dict[str, Provider] = {}

# Built-in providers and the module that registers each (imported on first use).
BUILTIN_MODULES: dict[str, str] = {
    "local": "greenroom.avatars.local",
    "file": "greenroom.avatars.file",
    "liveavatar": "greenroom.avatars.liveavatar",
    "heygen": "greenroom.avatars.heygen",
    "attach": "greenroom.avatars.attach",
}


def register_provider(name: str, provider: Provider) -> None:
    """Make ``provider`` available as ``name`` (replaces an earlier one of that name)."""
    PROVIDERS[name] = provider


def get_provider(name: str) -> Provider:
    """The provider called ``name``.

    Raises:
        InvalidInput: ``name`` is not a string or empty (field ``provider``).
        NotFound: no provider of that name exists.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("provider must be a non-empty name", field="provider")
    if name not in PROVIDERS and name in BUILTIN_MODULES:
        try:
            importlib.import_module(BUILTIN_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name is None or not BUILTIN_MODULES[name].startswith(exc.name):
                raise  # the module exists but something it needs is missing: show that
            log.debug("provider %s is not installed here", name)
    try:
        return PROVIDERS[name]
    except KeyError:
        known = sorted(set(PROVIDERS) | set(BUILTIN_MODULES))
        raise NotFound(f"unknown avatar provider {name!r}; known: {', '.join(known)}") from None


def provider_names() -> list[str]:
    """Names of the providers that can be loaded here."""
    names = []
    for name in sorted(set(PROVIDERS) | set(BUILTIN_MODULES)):
        try:
            get_provider(name)
        except NotFound:
            continue
        names.append(name)
    return names


async def stop_vendor_session(ref: VendorSessionRef, *, settings: Any = None) -> bool:
    """Stop a vendor session recorded earlier (e.g. after a restart); False if it had ended.

    Raises:
        NotFound: ``ref.vendor`` is not a provider that runs vendor sessions.
        ConfigError: no API key for the vendor.
        ProviderError: the vendor could not be reached or refused the stop.
    """
    provider = get_provider(ref.vendor)
    if not isinstance(provider, VendorProvider):
        raise NotFound(f"provider {ref.vendor!r} does not run vendor sessions")
    return await provider.stop_session(ref, settings=settings)
