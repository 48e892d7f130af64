"""Greenroom inside a LiveKit Agents app: a background behind the agent's avatar in one call.

An agents app already has a room (``ctx.room``) and an avatar plugin session
(``livekit-plugins-liveavatar``, ``-tavus``, ``-simli``, ``-anam``, ``-bey``...). The
avatar joins that room as its own participant, publishing on behalf of the agent::

    from greenroom.agents import add_background

    await avatar.start(session, room=ctx.room)
    handle = await add_background(ctx.room, avatar=avatar, background="office.jpg")
    ...
    await handle.set_background("#0b3d91", transition=0.5)
    await handle.aclose()

The agent's own participant becomes the compositor: it subscribes to the avatar's camera
and microphone, keys each frame and publishes the composited track ``greenroom`` (camera)
and the re-timed voice ``greenroom-audio`` (microphone). LiveKit's agent frontends show the
agent's camera before the avatar worker's, so they pick the composited picture. Nothing else
is needed: no Greenroom service, no database, no extra LiveKit credentials.

See ``docs/quickstart-agents.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

from livekit import rtc
from livekit.rtc.room import EventTypes

from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor import (
    ATTR_AVATAR,
    ATTR_BACKGROUND,
    ATTR_KEY_COLOR,
    ATTR_KEYER,
    ATTR_ROLE,
    ROLE_COMPOSITOR,
    Compositor,
    CompositorClosed,
    CompositorOptions,
)
from greenroom.compositor.control import coerce_background
from greenroom.compositor.options import ATTR_PUBLISH_ON_BEHALF as PUBLISH_ON_BEHALF
from greenroom.compositor.tracks import kind_name
from greenroom.errors import Conflict, InvalidInput, NotFound
from greenroom.keying.params import KEYING_MODES, KeyingMode
from greenroom.keying.params import Mode as KeyerMode

__all__ = [
    "PUBLISH_ON_BEHALF",
    "AvatarRef",
    "BackgroundHandle",
    "HasAvatarIdentity",
    "HasIdentity",
    "Mode",
    "add_background",
]

logger = logging.getLogger("greenroom.agents")

Mode = KeyingMode
MODES = KEYING_MODES

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the avatar to join and the first composited frame."""
MIC_GRACE = 2.0
"""Seconds to wait for the avatar's microphone once its camera is there (it may have none)."""
_CAMERA = (rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_UNKNOWN)
T = TypeVar("T")
_WAKE_ON: tuple[EventTypes, ...] = (
    "participant_connected",
    "participant_attributes_changed",
    "track_published",
    "track_subscribed",
    "track_unsubscribed",
)


@runtime_checkable
class HasAvatarIdentity(Protocol):
    """A ``livekit.agents`` avatar session (every plugin has ``avatar_identity``)."""

    @property
    def avatar_identity(self) -> str: ...


@runtime_checkable
class HasIdentity(Protocol):
    """A Greenroom avatar session (``greenroom.avatars.AvatarSession``)."""

    identity: str


AvatarRef = str | HasAvatarIdentity | HasIdentity | None
"""Who the avatar is: a participant identity, an avatar session, or ``None`` (the
participant whose ``lk.publish_on_behalf`` names this room's agent)."""

# one compositor per connected room: the agent's participant publishes one ``greenroom`` track
_ACTIVE: weakref.WeakKeyDictionary[rtc.Room, BackgroundHandle] = weakref.WeakKeyDictionary()
_STARTING: weakref.WeakSet[rtc.Room] = weakref.WeakSet()


class BackgroundHandle:
    """A running background behind one avatar; returned by :func:`add_background`.

    Use it to switch the background, look at what viewers get, and stop::

        async with await add_background(ctx.room, avatar=avatar, background="#0044ff") as bg:
            await bg.set_background("blur")

    Closing (``aclose`` or leaving the ``async with``) unpublishes the composited tracks,
    stops answering the RPC and clears the ``greenroom.*`` attributes from the agent's
    participant; the room stays connected.
    """

    def __init__(
        self,
        room: rtc.Room,
        compositor: Compositor,
        release: list[rtc.RemoteTrackPublication],
    ) -> None:
        self.room = room
        self.compositor = compositor
        self._release = release  # avatar tracks we subscribed only for the compositor
        self._closing: asyncio.Task[None] | None = None
        compositor.on_close(self._ended)

    @property
    def avatar_identity(self) -> str:
        return self.compositor.avatar_identity

    @property
    def mode(self) -> KeyerMode:
        """The keyer in use: ``"chroma"`` or ``"segment"`` (with ``mode="auto"``, what the
        avatar's frames looked like; ``compositor.metrics()["keyer"]`` says why)."""
        in_use: KeyerMode = self.compositor.keyer_state()["in_use"]  # type: ignore[assignment]
        return in_use

    @property
    def background(self) -> BackgroundSpec:
        """The background now on (the target of a crossfade in progress)."""
        return self.compositor.background

    @property
    def closed(self) -> bool:
        return self.compositor.closed

    async def set_background(
        self, background: BackgroundSpec | str | dict[str, object], transition: float | None = None
    ) -> BackgroundSpec:
        """Switch to ``background`` with a crossfade of ``transition`` seconds.

        The new background is checked and opened first; on error the picture stays.

        Raises:
            InvalidInput: a bad background (field ``background``) or transition.
            CompositorClosed: the handle is closed.
        """
        if self.compositor.closed:
            raise CompositorClosed(
                f"the background of {self.avatar_identity!r} is closed "
                f"({self.compositor.closed_reason})"
            )
        try:
            _check_file(coerce_background(background))
            return await self.compositor.set_background(background, transition)
        except InvalidInput as exc:
            raise _named(exc) from None

    def snapshot_png(self) -> bytes | None:
        """The latest composited frame as PNG (what viewers see), or None before the first."""
        return self.compositor.snapshot_png()

    def metrics(self) -> dict[str, object]:
        """The compositor's counters and latencies (see ``docs/compositor.md``)."""
        return self.compositor.metrics()

    async def wait_closed(self) -> str:
        """Wait until the background ends (``aclose``, or the room went away); the reason."""
        return await self.compositor.wait_closed()

    async def aclose(self) -> None:
        """Stop compositing and leave the room as it was (idempotent)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def __aenter__(self) -> BackgroundHandle:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _close(self) -> None:
        await self.compositor.aclose()
        room = self.room
        if room.isconnected():
            cleared = dict.fromkeys(
                (ATTR_ROLE, ATTR_AVATAR, ATTR_BACKGROUND, ATTR_KEY_COLOR, ATTR_KEYER), ""
            )
            try:  # an empty value removes the attribute
                await asyncio.wait_for(room.local_participant.set_attributes(cleared), 5.0)
            except Exception as exc:
                logger.warning("could not clear the compositor attributes: %s", exc)
            for pub in self._release:
                with contextlib.suppress(Exception):
                    pub.set_subscribed(False)

    def _ended(self, reason: str) -> None:
        if _ACTIVE.get(self.room) is self:
            del _ACTIVE[self.room]
        if reason != "closed":
            logger.warning("background of %r ended: %s", self.avatar_identity, reason)


async def add_background(
    room: rtc.Room,
    *,
    avatar: AvatarRef = None,
    background: BackgroundSpec | str | dict[str, object],
    mode: Mode = "auto",
    options: CompositorOptions | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> BackgroundHandle:
    """Put ``background`` behind the avatar in ``room``, composited on the server.

    Args:
        room: the agent's connected room (``ctx.room``); its participant publishes the
            composited picture and so needs publish permission (agent tokens have it).
        avatar: the avatar: a ``livekit.agents`` avatar session (``avatar_identity``), a
            Greenroom avatar session (``identity``), a participant identity, or ``None``:
            the participant whose ``lk.publish_on_behalf`` names this room's agent.
        background: ``"#0044ff"``, ``"blur"``, ``"blur:25"``, ``"none"``, an image or video
            file (``"office.jpg"``, ``"video:/srv/loop.mp4"``), a dict of
            ``BackgroundSpec`` fields or a ``BackgroundSpec``.
        mode: ``"chroma"`` for green/blue-screen avatars, ``"segment"`` for avatars on an
            ordinary background, ``"auto"``: the compositor looks at the avatar's frames
            and picks per stream (``handle.mode`` says which).
        options: compositor settings (bitrate, fps, chroma parameters...); ``mode`` wins
            over ``options.mode``.
        timeout: seconds for the avatar to join and the first composited frame.

    Returns:
        A :class:`BackgroundHandle`, once the first composited frame is published.

    Raises:
        InvalidInput: a bad argument; ``field`` names it (``background``, ``mode``,
            ``avatar``, ``room``, ``timeout``).
        Conflict: this room already has a background running.
        NotFound: no avatar joined within ``timeout``.
        TimeoutError: the avatar joined but sent no video within ``timeout``.
    """
    try:
        spec = _check_args(room, avatar, background, mode, options, timeout)
    except InvalidInput as exc:
        raise _named(exc) from None
    running = _ACTIVE.get(room)
    if room in _STARTING or (running is not None and not running.closed):
        who = "another avatar" if running is None else repr(running.avatar_identity)
        raise Conflict(
            f"room {room.name!r} already has a background behind {who}; "
            "use its handle's set_background"
        )
    _STARTING.add(room)
    try:
        return await _start(room, avatar, spec, mode, options, timeout)
    finally:
        _STARTING.discard(room)


async def _start(
    room: rtc.Room,
    avatar: AvatarRef,
    spec: BackgroundSpec,
    mode: Mode,
    options: CompositorOptions | None,
    timeout: float,
) -> BackgroundHandle:
    deadline = time.monotonic() + timeout
    agent = room.local_participant.identity
    participant = await _find_avatar(room, avatar, agent, deadline)
    await _camera(room, participant, deadline)
    await _until(
        room, lambda: _microphone(participant), min(deadline, time.monotonic() + MIC_GRACE)
    )
    # The compositor subscribes what the room has not (and reads what it has); closing
    # unsubscribes only what the room had not subscribed itself.
    release = [pub for pub in participant.track_publications.values() if not pub.subscribed]

    base = options or CompositorOptions()
    required = dict(base.avatar_attributes)
    if participant.attributes.get(PUBLISH_ON_BEHALF) == agent:
        required[PUBLISH_ON_BEHALF] = agent  # what the plugin minted: impostors are ignored
    opts = replace(
        base,
        mode=mode,
        avatar_kinds=base.avatar_kinds if options else (kind_name(participant.kind),),
        avatar_attributes=required,
    )
    comp = await Compositor.attach(room, participant.identity, spec, opts)
    handle = BackgroundHandle(room, comp, release)
    _ACTIVE[room] = handle
    try:
        await comp.wait_first_frame(max(deadline - time.monotonic(), 1.0))
    except BaseException:
        await handle.aclose()
        raise
    return handle


# ----------------------------------------------------------------- steps
def _check_args(
    room: object,
    avatar: object,
    background: object,
    mode: object,
    options: object,
    timeout: object,
) -> BackgroundSpec:
    """Every argument checked before anything touches the room."""
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
    if options is not None and not isinstance(options, CompositorOptions):
        raise InvalidInput("options must be a CompositorOptions", field="options")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidInput("timeout must be a number of seconds > 0", field="timeout")
    _avatar_identity(avatar)  # the type, before waiting for anybody
    spec = coerce_background(background)
    _check_file(spec)
    if not isinstance(room, rtc.Room):
        raise InvalidInput(
            "room must be the agent's connected livekit.rtc.Room (ctx.room)", field="room"
        )
    if not room.isconnected():
        raise InvalidInput(
            "room is not connected; call ctx.connect() (or room.connect) first", field="room"
        )
    return spec


def _named(exc: InvalidInput) -> InvalidInput:
    """The same error, its message starting with the field it is about."""
    if not exc.field or exc.message.startswith(f"{exc.field}:"):
        return exc
    return InvalidInput(f"{exc.field}: {exc.message}", field=exc.field, code=exc.code)


def _check_file(spec: BackgroundSpec) -> None:
    if spec.path is not None and not os.path.isfile(spec.path):
        where = os.path.abspath(spec.path)
        raise InvalidInput(
            f"{spec.kind} file {spec.path!r} does not exist (looked at {where})",
            field="background",
        )


def _avatar_identity(avatar: object) -> str | None:
    if avatar is None:
        return None
    if isinstance(avatar, str):
        ident = avatar
    elif isinstance(avatar, HasAvatarIdentity):
        ident = avatar.avatar_identity
    elif isinstance(avatar, HasIdentity):
        ident = avatar.identity
    else:
        raise InvalidInput(
            "avatar must be an avatar session (with avatar_identity or identity), a "
            f"participant identity or None, got {type(avatar).__name__}",
            field="avatar",
        )
    if not isinstance(ident, str) or not ident.strip():
        raise InvalidInput("avatar identity is empty", field="avatar")
    return ident


async def _find_avatar(
    room: rtc.Room, avatar: AvatarRef, agent: str, deadline: float
) -> rtc.RemoteParticipant:
    """The avatar's participant, waiting for it to join."""
    wanted = _avatar_identity(avatar)

    def match() -> rtc.RemoteParticipant | None:
        for p in room.remote_participants.values():
            if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR:
                continue
            if wanted is not None and p.identity == wanted:
                return p
            if wanted is None and p.attributes.get(PUBLISH_ON_BEHALF) == agent:
                return p
        return None

    found = await _until(room, match, deadline)
    if found is None:
        who = (
            f"participant {wanted!r}"
            if wanted
            else f"participant with {PUBLISH_ON_BEHALF}={agent!r}"
        )
        raise NotFound(f"avatar: no {who} joined room {room.name!r} in time")
    return found


async def _camera(
    room: rtc.Room, p: rtc.RemoteParticipant, deadline: float
) -> rtc.RemoteTrackPublication:
    def match() -> rtc.RemoteTrackPublication | None:
        for pub in p.track_publications.values():
            if pub.kind == rtc.TrackKind.KIND_VIDEO and pub.source in _CAMERA:
                return pub
        return None

    pub = await _until(room, match, deadline)
    if pub is None:
        raise TimeoutError(f"avatar {p.identity!r} published no camera track in time")
    return pub


def _microphone(p: rtc.RemoteParticipant) -> rtc.RemoteTrackPublication | None:
    for pub in p.track_publications.values():
        if pub.kind == rtc.TrackKind.KIND_AUDIO:
            return pub
    return None


async def _until(room: rtc.Room, get: Callable[[], T | None], deadline: float) -> T | None:
    """Poll ``get()`` on every room event (and every 0.25 s) until it is not None."""
    changed = asyncio.Event()

    def poke(*_args: object) -> None:
        changed.set()

    for e in _WAKE_ON:
        room.on(e, poke)
    try:
        while (value := get()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, 0.25))
        return value
    finally:
        for e in _WAKE_ON:
            room.off(e, poke)
