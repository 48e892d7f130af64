"""The compositor participant: subscribe to one avatar, key, composite, publish.

One compositor serves one avatar in one room. It joins as kind ``agent`` with identity
``greenroom-<avatar>``, subscribes to nothing but that avatar's camera and microphone,
keys each frame on a single worker thread and publishes the track ``greenroom`` plus the
avatar's voice re-timed to match. Backgrounds change at run time through
:meth:`Compositor.set_background` or the RPC ``greenroom.set_background``.

It is built from stages, each owning its state:

- :class:`~greenroom.compositor.link.RoomLink`: the connection, joined and rejoined;
- :class:`~greenroom.compositor.tracks.AvatarTracks`: which participant is the avatar and
  which of its tracks are read;
- :class:`~greenroom.compositor.frames.FrameLoop`: key -> composite -> publish;
- :class:`~greenroom.compositor.control.BackgroundControl`: RPC and attributes;
- :class:`~greenroom.compositor.stats.StatsReporter`: the periodic stats line.

Usage::

    comp = await Compositor.start(target, "avatar-1", BackgroundSpec.parse("#0044ff"))
    await comp.wait_first_frame(10)
    await comp.set_background("image:/srv/bg/office.png", transition=0.5)
    png = comp.snapshot_png()
    await comp.aclose()
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc

from greenroom.backgrounds import BackgroundSpec, Scene
from greenroom.backgrounds.spec import hex_color
from greenroom.compositor.audio import AudioOutput
from greenroom.compositor.control import (
    BackgroundControl,
    BackgroundResolver,
    attributes_for,
    coerce_background,
)
from greenroom.compositor.frames import FrameLoop
from greenroom.compositor.link import RoomLink
from greenroom.compositor.lip_sync import ReceiveLag
from greenroom.compositor.options import (
    ATTR_OUTPUT,
    ATTR_PUBLISH_ON_BEHALF,
    CompositorOptions,
    RoomTargetLike,
    compositor_identity,
)
from greenroom.compositor.stats import SessionStats, StatsReporter
from greenroom.compositor.tasks import TaskSet
from greenroom.compositor.tracks import AvatarTracks
from greenroom.errors import CompositorClosed, GreenroomError, InvalidInput
from greenroom.tokens import agent_token

__all__ = ["BackgroundResolver", "Compositor", "CompositorClosed"]

logger = logging.getLogger("greenroom.compositor")


class Compositor:
    """One avatar's background compositor in one LiveKit room.

    Build it with :meth:`start` (joins with its own connection, rejoins when the
    connection drops) or :meth:`attach` (uses a room someone else connected, such as a
    LiveKit Agents job).
    """

    def __init__(
        self,
        avatar_identity: str,
        background: BackgroundSpec,
        options: CompositorOptions | None = None,
        *,
        room_name: str = "",
        resolve_background: BackgroundResolver | None = None,
    ) -> None:
        if not avatar_identity:
            raise GreenroomError("avatar identity is empty", code="invalid_input", status=422)
        self.options = options or CompositorOptions()
        self.avatar_identity = avatar_identity
        self.identity = compositor_identity(avatar_identity)
        self.room_name = room_name
        self.closed_reason: str | None = None
        opts = self.options
        session = opts.session_id or f"{room_name}/{avatar_identity}"
        self.stats = SessionStats(session, avatar_identity)
        scene = Scene(background=background, mode=opts.mode, chroma=opts.chroma)
        self._audio = AudioOutput()
        self._link = RoomLink(opts, session, self._joined, self._leaving)
        self._voice_lag = ReceiveLag(
            lambda: self._tracks.remote_tracks(), opts.lip_sync_hold, self.stats
        )
        self._frames = FrameLoop(
            scene,
            opts,
            self.stats,
            lambda: self._link.room,
            lambda: self._tracks.reading_video,
            hold=lambda: self._voice_lag.seconds,
        )
        self._tracks = AvatarTracks(
            avatar_identity,
            opts,
            self.stats,
            self._frames.slot,
            self._audio,
            voice_lag=lambda: self._voice_lag.seconds,
        )
        self._control = BackgroundControl(scene, opts, avatar_identity, session, resolve_background)
        if opts.output != "composite":
            self._control.extra_attributes[ATTR_OUTPUT] = opts.output
        self._reporter = StatsReporter(self.stats, opts.stats_interval)
        self._tasks = TaskSet(session, self._spawn_shutdown)
        self._closed = asyncio.Event()
        self._shutdown_task: asyncio.Task[None] | None = None
        self._close_callbacks: list[Callable[[str], object]] = []

    # ----------------------------------------------------------------- construction
    @classmethod
    async def start(
        cls,
        target: RoomTargetLike,
        avatar_identity: str,
        background: BackgroundSpec | str,
        options: CompositorOptions | None = None,
        *,
        resolve_background: BackgroundResolver | None = None,
    ) -> Compositor:
        """Join ``target.room`` with a connection of its own and start compositing.

        ``resolve_background`` maps what an RPC caller sends (``"bg_…"`` library ids, say)
        to a spec; without it RPC callers may send colours, blur and none (and file paths
        only with ``options.rpc_file_paths``).

        Raises:
            InvalidInput: a bad background or option.
            rtc.ConnectError: LiveKit refused the first connection.
            TimeoutError: LiveKit did not answer the first connection.
        """
        comp = cls(
            avatar_identity,
            coerce_background(background),
            options,
            room_name=target.room,
            resolve_background=resolve_background,
        )
        if comp.options.publish_on_behalf:
            comp._control.extra_attributes[ATTR_PUBLISH_ON_BEHALF] = comp.options.publish_on_behalf
        else:  # an avatar that publishes for an agent: so does its compositor
            comp._control.follow_on_behalf = lambda: comp._tracks.agent_of_avatar(comp.identity)

        def token() -> str:
            return agent_token(
                target.api_key,
                target.api_secret,
                room=target.room,
                identity=comp.identity,
                name="Greenroom",
                attributes={
                    **comp.attributes_for(comp.avatar_identity, comp.background),
                    **comp._control.extra_attributes,
                },
            )

        await comp._begin(comp._link.join(target.url, token))
        return comp

    @classmethod
    async def attach(
        cls,
        room: rtc.Room,
        avatar_identity: str,
        background: BackgroundSpec | str,
        options: CompositorOptions | None = None,
        *,
        resolve_background: BackgroundResolver | None = None,
    ) -> Compositor:
        """Composite in a room that is already connected (for example a LiveKit Agents job).

        The room's local participant should already carry this compositor's attributes
        (:meth:`attributes_for`); reconnecting is left to whoever owns the room. Its
        track is then the room participant's own camera, which is what LiveKit's agents
        frontends show first when that participant is the agent.

        Raises:
            InvalidInput: ``options.publish_on_behalf`` is set (the room's own participant,
                usually the agent itself, would stop being the agent in the frontends' eyes).
        """
        if options is not None and options.publish_on_behalf:
            raise InvalidInput(
                "publish_on_behalf applies to a compositor of its own (start); an attached "
                "compositor publishes as the room's participant, the agent itself",
                field="publish_on_behalf",
            )
        comp = cls(
            avatar_identity,
            coerce_background(background),
            options,
            room_name=room.name,
            resolve_background=resolve_background,
        )
        comp.identity = room.local_participant.identity
        await comp._begin(comp._link.adopt(room))
        return comp

    async def _begin(self, joining: Coroutine[Any, Any, None]) -> None:
        """Warm the keyer while joining, then run the stages; on failure leave nothing."""
        self._frames.warm_up()
        try:
            await joining
        except BaseException:
            await self._shutdown("could not connect")
            raise
        self._tasks.spawn(self._frames.run(), "greenroom-process")
        self._tasks.spawn(self._control.run(), "greenroom-attributes")
        self._tasks.spawn(self._supervise(), "greenroom-supervise")
        if self.options.audio:
            self._tasks.spawn(self._voice_lag.run(), "greenroom-lip-sync")
        if self.options.stats_interval > 0:
            self._tasks.spawn(self._reporter.run(), "greenroom-stats")

    @staticmethod
    def attributes_for(avatar_identity: str, background: BackgroundSpec) -> dict[str, str]:
        """The participant attributes a compositor publishes about itself."""
        return attributes_for(avatar_identity, background)

    # ----------------------------------------------------------------- public API
    @property
    def background(self) -> BackgroundSpec:
        return self._frames.scene.background

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        return self._frames.scene.key_color

    def keyer_state(self) -> dict[str, object]:
        """The keying mode asked for, the keyer in use and, with ``auto``, why."""
        return self._frames.scene.keyer_state()

    @property
    def room(self) -> rtc.Room | None:
        return self._link.room

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def set_background(
        self, spec: BackgroundSpec | str | dict[str, object], transition: float | None = None
    ) -> BackgroundSpec:
        """Switch the background with a crossfade of ``transition`` seconds.

        The new background is validated and opened before anything changes: on error
        (``InvalidInput`` naming the field) the picture stays as it was.
        """
        return await self._control.set_background(spec, transition)

    async def publish_status(self, attributes: dict[str, str]) -> None:
        """Add ``attributes`` to the ones this compositor publishes (a dispatched job's state
        and replies, see :mod:`greenroom.compositor.commands`) and publish them now."""
        self._control.extra_attributes.update(attributes)
        await self._control.publish_attributes()

    def metrics(self) -> dict[str, object]:
        """Counters and p50/p95 figures of this session (see ``docs/compositor.md``)."""
        m = self.stats.snapshot(time.monotonic())
        m["background"] = json.loads(self.background.to_attribute())
        key = self.key_color
        m["key_color"] = None if key is None else hex_color(key)
        m["keyer"] = self.keyer_state()
        m["closed_reason"] = self.closed_reason
        return m

    def snapshot_png(self) -> bytes | None:
        """The latest published frame as PNG, or None before the first one."""
        return self._frames.snapshot_png()

    async def wait_first_frame(self, timeout: float = 10.0) -> None:
        """Wait until the first composited avatar frame has been published.

        Raises:
            TimeoutError: no avatar frame within ``timeout`` seconds.
            CompositorClosed: the compositor ended first.
        """
        if await self._frames.wait_first(timeout, until=self._closed):
            return
        if self._closed.is_set():
            raise CompositorClosed(f"compositor ended: {self.closed_reason}")
        m = self.stats.snapshot(time.monotonic())
        raise TimeoutError(
            f"no frame from avatar {self.avatar_identity!r} within {timeout:g} s "
            f"(frames in {m['frames_in']}, dropped {m['dropped_by_reason']})"
        )

    async def wait_closed(self) -> str:
        """Wait until the compositor ends; returns the reason."""
        await self._closed.wait()
        return self.closed_reason or ""

    def on_close(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(reason)`` when the compositor ends (by itself or by ``aclose``)."""
        self._close_callbacks.append(callback)

    async def aclose(self) -> None:
        """Leave the room and release everything (returns when that is done)."""
        await self._shutdown("closed")

    # ----------------------------------------------------------------- room set-up
    async def _joined(self, room: rtc.Room) -> None:
        """After each join: RPC and attributes, our audio track, then the avatar's tracks."""
        await self._control.bind(room)
        if self.options.audio:
            await self._audio.publish(room)
        self._tracks.bind(room)
        self._voice_lag.resume()
        logger.info(
            "compositor joined",
            extra={"session": self.stats.session, "room": room.name, "identity": self.identity},
        )

    async def _leaving(self, room: rtc.Room) -> None:
        """Before each leave: stop reading, unpublish, stop answering."""
        await self._voice_lag.pause()
        await self._tracks.unbind()
        await self._frames.output.unpublish(room)
        await self._audio.close(room)
        self._control.unbind()

    # ----------------------------------------------------------------- ending
    async def _supervise(self) -> None:
        reason = await self._link.supervise()
        self._spawn_shutdown(reason)

    def _spawn_shutdown(self, reason: str) -> asyncio.Task[None]:
        """Start ending (once: the first reason wins); the task is the whole teardown."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(
                self._teardown(reason), name="greenroom-teardown"
            )
        return self._shutdown_task

    async def _shutdown(self, reason: str) -> None:
        """End, and return when the teardown is done, whoever started it."""
        await asyncio.shield(self._spawn_shutdown(reason))

    async def _teardown(self, reason: str) -> None:
        self.closed_reason = reason
        self._closed.set()
        level = logging.INFO if reason == "closed" else logging.ERROR
        logger.log(level, "compositor ended: %s", reason, extra={"session": self.stats.session})
        await self._voice_lag.pause()
        await self._tasks.cancel_all()
        await self._link.leave()
        await self._frames.close()
        self.stats.close()
        for cb in self._close_callbacks:
            try:
                cb(reason)
            except Exception:  # a callback must not break shutdown
                logger.exception("close callback failed")
