"""The compositor participant: subscribe to one avatar, key, composite, publish.

One compositor serves one avatar in one room. It joins as kind ``agent`` with identity
``greenroom-<avatar>``, subscribes to nothing but that avatar's camera and microphone,
keys each frame on a single worker thread and publishes the track ``greenroom`` plus the
avatar's voice re-timed to match. Backgrounds change at run time through
:meth:`Compositor.set_background` or the RPC ``greenroom.set_background``.

Usage::

    comp = await Compositor.start(target, "avatar-1", BackgroundSpec.parse("#0044ff"))
    await comp.wait_first_frame(10)
    await comp.set_background("image:/srv/bg/office.png", transition=0.5)
    png = comp.snapshot_png()
    await comp.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from livekit import rtc

from greenroom.backgrounds import BackgroundSpec, Scene
from greenroom.compositor.audio import AudioRetimer, new_audio_source
from greenroom.compositor.control import coerce_background, parse_set_background, to_rpc_error
from greenroom.compositor.options import (
    ATTR_AVATAR,
    ATTR_BACKGROUND,
    ATTR_KEY_COLOR,
    ATTR_ROLE,
    AUDIO_TRACK_NAME,
    ROLE_COMPOSITOR,
    RPC_SET_BACKGROUND,
    CompositorOptions,
    RoomTargetLike,
    check_transition,
    compositor_identity,
)
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.video import (
    FpsCap,
    InFrame,
    LatestFrameSlot,
    VideoOutput,
    bounded,
    publish_options,
)
from greenroom.errors import GreenroomError, InvalidInput
from greenroom.keying import I420Frame
from greenroom.tokens import agent_token

BackgroundResolver = Callable[[object], BackgroundSpec]
"""Maps an RPC ``background`` value to a spec; raises ``InvalidInput`` to refuse it."""

logger = logging.getLogger("greenroom.compositor")

DEFAULT_KEY = (0, 177, 64)  # #00B140, the usual chroma green
MAX_RENDER_ERRORS = 60  # consecutive failed frames before the session gives up
STALL_REPEAT = 1.0  # s without avatar frames before the last picture is repeated

# A room that ends like this is not coming back: end the session instead of rejoining.
_FINAL_REASONS = {
    rtc.DisconnectReason.CLIENT_INITIATED,
    rtc.DisconnectReason.DUPLICATE_IDENTITY,
    rtc.DisconnectReason.PARTICIPANT_REMOVED,
    rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.ROOM_CLOSED,  # e.g. everyone else left (agents do not keep a room)
}


class CompositorClosed(GreenroomError):
    """The compositor ended (``reason`` says why) before the awaited event happened."""

    code = "compositor_closed"
    status = 409


def _name_os_thread(name: bytes = b"greenroom-key") -> None:
    """Name the keying thread for the OS too (top -H, /proc), so its CPU is visible."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def _hex(rgb: tuple[int, int, int] | None) -> str:
    return "" if rgb is None else "#{:02x}{:02x}{:02x}".format(*rgb)


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
        self._resolve_background = resolve_background
        self.avatar_identity = avatar_identity
        self.identity = compositor_identity(avatar_identity)
        self.room_name = room_name
        session = self.options.session_id or f"{room_name}/{avatar_identity}"
        self.stats = SessionStats(session, avatar_identity)
        self._scene = Scene(
            background=background, mode=self.options.mode, chroma=self.options.chroma
        )
        self._pool = ThreadPoolExecutor(
            1, thread_name_prefix="greenroom-key", initializer=_name_os_thread
        )
        self._slot = LatestFrameSlot(self.stats)
        self._fps_cap = FpsCap(self.options.max_fps)
        self._video = VideoOutput(self.options)
        self._room: rtc.Room | None = None
        self._target: RoomTargetLike | None = None
        self._audio_source: rtc.AudioSource | None = None
        self._audio_pub_sid: str | None = None
        self._retimer: AudioRetimer | None = None
        self._video_reader: asyncio.Task[None] | None = None
        self._video_stream: rtc.VideoStream | None = None
        self._video_track_sid: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._first_frame = asyncio.Event()
        self._closed = asyncio.Event()
        self._disconnected = asyncio.Event()
        self.closed_reason: str | None = None
        self._close_callbacks: list[Callable[[str], object]] = []
        self._t0 = time.monotonic()
        self._last: tuple[bytearray, int, int] | None = None  # latest published I420 frame
        self._last_avatar: InFrame | None = None
        self._key_color_attr = ""
        self._owns_room = False
        self._last_stats_log = time.monotonic()

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
        """
        comp = cls(
            avatar_identity,
            coerce_background(background),
            options,
            room_name=target.room,
            resolve_background=resolve_background,
        )
        comp._target = target
        comp._owns_room = True
        comp._warm_up()
        try:
            await comp._connect()
        except BaseException:
            await comp._shutdown("could not connect")
            raise
        comp._spawn(comp._process_loop(), "greenroom-process")
        comp._spawn(comp._supervise(), "greenroom-supervise")
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
        (:meth:`attributes_for`); reconnecting is left to whoever owns the room.
        """
        comp = cls(
            avatar_identity,
            coerce_background(background),
            options,
            room_name=room.name,
            resolve_background=resolve_background,
        )
        comp.identity = room.local_participant.identity
        comp._warm_up()
        await comp._setup_room(room)
        comp._spawn(comp._process_loop(), "greenroom-process")
        comp._spawn(comp._watch_attached(), "greenroom-watch")
        return comp

    @staticmethod
    def attributes_for(avatar_identity: str, background: BackgroundSpec) -> dict[str, str]:
        """The participant attributes a compositor publishes about itself."""
        return {
            ATTR_ROLE: ROLE_COMPOSITOR,
            ATTR_AVATAR: avatar_identity,
            ATTR_BACKGROUND: background.to_attribute(),
        }

    def _warm_up(self) -> None:
        """Compile/load the keyer's kernels on the worker thread while we connect."""

        def warm() -> None:
            scene = Scene(background=BackgroundSpec.parse("#000000"), mode=self.options.mode)
            scene.render_i420(I420Frame.blank(64, 64, DEFAULT_KEY), 0.0)
            scene.close()

        fut = asyncio.get_running_loop().run_in_executor(self._pool, warm)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    # ----------------------------------------------------------------- public API
    @property
    def background(self) -> BackgroundSpec:
        return self._scene.background

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        return self._scene.key_color

    @property
    def room(self) -> rtc.Room | None:
        return self._room

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
        background = coerce_background(spec)
        seconds = self.options.transition if transition is None else check_transition(transition)
        # opening an image or video is I/O: keep it off the event loop and off the keyer
        await asyncio.to_thread(self._scene.set_background, background, seconds)
        logger.info(
            "background set",
            extra={"session": self.stats.session, "background": background.to_attribute()},
        )
        await self._publish_attributes()
        return background

    def metrics(self) -> dict[str, object]:
        """Counters and p50/p95 figures of this session (see ``docs/compositor.md``)."""
        m = self.stats.snapshot(time.monotonic())
        m["background"] = json.loads(self.background.to_attribute())
        m["key_color"] = _hex(self.key_color) or None
        m["closed_reason"] = self.closed_reason
        return m

    def snapshot_png(self) -> bytes | None:
        """The latest published frame as PNG, or None before the first one."""
        if self._last is None:
            return None
        from PIL import Image

        data, w, h = self._last
        rgb = I420Frame.from_buffer(data, w, h).to_rgb()
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
        return buf.getvalue()

    async def wait_first_frame(self, timeout: float = 10.0) -> None:
        """Wait until the first composited avatar frame has been published.

        Raises:
            TimeoutError: no avatar frame within ``timeout`` seconds.
            CompositorClosed: the compositor ended first.
        """
        waiter = asyncio.ensure_future(self._first_frame.wait())
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait(
                {waiter, closer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            closer.cancel()
        if self._first_frame.is_set():
            return
        if self._closed.is_set():
            raise CompositorClosed(f"compositor ended: {self.closed_reason}")
        raise TimeoutError(f"no frame from avatar {self.avatar_identity!r} within {timeout:g} s")

    async def wait_closed(self) -> str:
        """Wait until the compositor ends; returns the reason."""
        await self._closed.wait()
        return self.closed_reason or ""

    def on_close(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(reason)`` when the compositor ends (by itself or by ``aclose``)."""
        self._close_callbacks.append(callback)

    async def aclose(self) -> None:
        """Leave the room and release everything."""
        await self._shutdown("closed")

    # ----------------------------------------------------------------- room lifecycle
    async def _connect(self) -> None:
        assert self._target is not None
        target = self._target
        token = agent_token(
            target.api_key,
            target.api_secret,
            room=target.room,
            identity=self.identity,
            name="Greenroom",
            attributes=self.attributes_for(self.avatar_identity, self.background),
        )
        room = rtc.Room()
        await room.connect(target.url, token, rtc.RoomOptions(auto_subscribe=False))
        self._disconnected.clear()
        await self._setup_room(room)

    async def _setup_room(self, room: rtc.Room) -> None:
        self._room = room
        self._video_track_sid = None
        room.on("track_published", self._on_track_published)
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("track_unsubscribed", self._on_track_unsubscribed)
        room.on("track_unpublished", self._on_track_unpublished)
        room.on("participant_disconnected", self._on_participant_disconnected)
        room.on("participant_attributes_changed", self._on_attributes_changed)
        room.on("disconnected", self._on_disconnected)
        room.on("reconnected", self._rescan)
        room.local_participant.register_rpc_method(RPC_SET_BACKGROUND, self._rpc_set_background)
        await self._publish_attributes()
        if self.options.audio:
            self._audio_source = new_audio_source()
            track = rtc.LocalAudioTrack.create_audio_track(AUDIO_TRACK_NAME, self._audio_source)
            pub = await room.local_participant.publish_track(
                track, publish_options(self.options, audio=True)
            )
            self._audio_pub_sid = pub.sid
        self._rescan()
        logger.info(
            "compositor joined",
            extra={"session": self.stats.session, "room": room.name, "identity": self.identity},
        )

    async def _teardown_room(self) -> None:
        room, self._room = self._room, None
        await self._stop_video_reader()
        await self._stop_audio()
        if room is None:
            return
        with contextlib.suppress(Exception):
            room.off("disconnected", self._on_disconnected)
        await self._video.unpublish(room)
        if self._audio_source is not None:
            with contextlib.suppress(Exception):
                await bounded(self._audio_source.aclose())
            self._audio_source = None
        self._audio_pub_sid = None
        if self._owns_room:
            with contextlib.suppress(Exception):
                await bounded(room.disconnect())

    async def _supervise(self) -> None:
        """Rejoin with backoff when the connection drops; end the session if it cannot."""
        lo, hi = self.options.reconnect_backoff
        while not self._closed.is_set():
            await self._disconnected.wait()
            reason = self._disconnect_reason
            if reason in _FINAL_REASONS:
                name = rtc.DisconnectReason.Name(reason)
                self._spawn_shutdown(f"disconnected by LiveKit ({name})")
                return
            logger.warning(
                "compositor lost its connection; rejoining", extra={"session": self.stats.session}
            )
            await self._teardown_room()
            pause, last_error = lo, "no attempt"
            for attempt in range(1, self.options.reconnect_attempts + 1):
                await asyncio.sleep(pause)
                try:
                    await self._connect()
                except Exception as exc:  # any failure means "try again"
                    last_error = f"{type(exc).__name__}: {exc}"
                    logger.warning(
                        "rejoin attempt %d failed: %s",
                        attempt,
                        last_error,
                        extra={"session": self.stats.session},
                    )
                    pause = min(pause * 2, hi)
                    continue
                logger.info("compositor rejoined", extra={"session": self.stats.session})
                break
            else:
                self._spawn_shutdown(
                    f"could not rejoin after {self.options.reconnect_attempts} attempts "
                    f"({last_error})"
                )
                return

    async def _watch_attached(self) -> None:
        await self._disconnected.wait()
        reason = rtc.DisconnectReason.Name(self._disconnect_reason)
        self._spawn_shutdown(f"room disconnected ({reason})")

    _disconnect_reason: int = rtc.DisconnectReason.UNKNOWN_REASON

    def _on_disconnected(self, reason: int = rtc.DisconnectReason.UNKNOWN_REASON) -> None:
        self._disconnect_reason = reason
        self._disconnected.set()

    def _spawn_shutdown(self, reason: str) -> None:
        asyncio.get_running_loop().create_task(self._shutdown(reason))

    async def _shutdown(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self.closed_reason = reason
        self._closed.set()
        level = logging.INFO if reason == "closed" else logging.ERROR
        logger.log(level, "compositor ended: %s", reason, extra={"session": self.stats.session})
        current = asyncio.current_task()
        for t in list(self._tasks):
            if t is not current:
                t.cancel()
        for t in list(self._tasks):
            if t is not current:
                await bounded(t)
        await self._teardown_room()
        # let a frame in flight finish before the scene's sources close under it
        await bounded(asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True))
        with contextlib.suppress(Exception):
            self._scene.close()
        self.stats.close()
        for cb in self._close_callbacks:
            try:
                cb(reason)
            except Exception:  # a callback must not break shutdown
                logger.exception("close callback failed")

    def _spawn(self, coro: object, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._closed.is_set():
            return
        exc = task.exception()
        if exc is not None:
            logger.error(
                "compositor task %s failed",
                task.get_name(),
                exc_info=exc,
                extra={"session": self.stats.session},
            )
            self._spawn_shutdown(f"internal error in {task.get_name()}: {exc}")

    # ----------------------------------------------------------------- subscription
    def _is_avatar(self, p: rtc.RemoteParticipant) -> bool:
        # exact identity, and never another compositor (no echo loops)
        return p.identity == self.avatar_identity and p.attributes.get(ATTR_ROLE) != ROLE_COMPOSITOR

    def _on_track_published(
        self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if not self._is_avatar(p):
            return
        if pub.kind == rtc.TrackKind.KIND_VIDEO and pub.source in (
            rtc.TrackSource.SOURCE_CAMERA,
            rtc.TrackSource.SOURCE_UNKNOWN,
        ):
            current = self._video_track_sid
            if current not in (None, pub.sid) and current in p.track_publications:
                return  # already on a camera track that still exists
            self._video_track_sid = pub.sid
            pub.set_subscribed(True)
        elif (
            self.options.audio
            and pub.kind == rtc.TrackKind.KIND_AUDIO
            and pub.source in (rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackSource.SOURCE_UNKNOWN)
        ):
            pub.set_subscribed(True)

    def _rescan(self) -> None:
        """Look at every publication again (after joining, and after the SDK resumed a
        connection: a restarted server gives the avatar's tracks new ids)."""
        room = self._room
        if room is None:
            return
        for p in list(room.remote_participants.values()):
            for pub in list(p.track_publications.values()):
                if not pub.subscribed:
                    self._on_track_published(pub, p)

    def _on_track_subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if not self._is_avatar(p):
            return
        if track.kind == rtc.TrackKind.KIND_VIDEO and pub.sid == self._video_track_sid:
            self._start_video_reader(track)
        elif track.kind == rtc.TrackKind.KIND_AUDIO and self._audio_source is not None:
            if self._retimer is not None:
                return
            self._retimer = AudioRetimer(self._audio_source, self._audio_delay, self.stats)
            self._retimer.start(track)

    def _on_track_unsubscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        self._on_track_gone(pub, p)

    def _on_track_unpublished(
        self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        self._on_track_gone(pub, p)

    def _on_track_gone(self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if p.identity != self.avatar_identity:
            return
        if pub.sid == self._video_track_sid:
            self._video_track_sid = None
            asyncio.get_running_loop().create_task(self._stop_video_reader())
            # another camera track of the avatar may take over
            for other in p.track_publications.values():
                if other.sid != pub.sid:
                    self._on_track_published(other, p)
        elif pub.kind == rtc.TrackKind.KIND_AUDIO:
            asyncio.get_running_loop().create_task(self._stop_audio())

    def _on_participant_disconnected(self, p: rtc.RemoteParticipant) -> None:
        if p.identity != self.avatar_identity:
            return
        logger.info("avatar left; waiting for it", extra={"session": self.stats.session})
        self._video_track_sid = None
        asyncio.get_running_loop().create_task(self._stop_video_reader())
        asyncio.get_running_loop().create_task(self._stop_audio())

    def _on_attributes_changed(self, changed: dict[str, str], p: rtc.Participant) -> None:
        if (
            isinstance(p, rtc.RemoteParticipant)
            and p.identity == self.avatar_identity
            and p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR
        ):
            logger.warning(
                "participant %r is a compositor; not processing it",
                p.identity,
                extra={"session": self.stats.session},
            )
            for pub in p.track_publications.values():
                pub.set_subscribed(False)

    def _start_video_reader(self, track: rtc.Track) -> None:
        if self._video_reader is not None:
            self._video_reader.cancel()
        stream = rtc.VideoStream(track, capacity=2, format=rtc.VideoBufferType.I420)
        self._video_stream = stream
        self._video_reader = asyncio.get_running_loop().create_task(
            self._read_video(stream), name="greenroom-video-read"
        )
        self.stats.set_avatar_present(True)
        logger.info("subscribed to avatar camera", extra={"session": self.stats.session})

    async def _read_video(self, stream: rtc.VideoStream) -> None:
        async for ev in stream:
            now = time.monotonic()
            self.stats.frame_in()
            f = ev.frame
            meta = ev.metadata
            capture_us = meta.user_timestamp if meta is not None and meta.user_timestamp else None
            self._slot.put(InFrame(f.data, f.width, f.height, now, capture_us))

    async def _stop_video_reader(self) -> None:
        reader, self._video_reader = self._video_reader, None
        stream, self._video_stream = self._video_stream, None
        self._slot.clear()
        self.stats.set_avatar_present(False)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await bounded(reader)
        if stream is not None:
            with contextlib.suppress(Exception):
                await bounded(stream.aclose())

    async def _stop_audio(self) -> None:
        retimer, self._retimer = self._retimer, None
        if retimer is not None:
            await retimer.aclose()

    def _audio_delay(self) -> float:
        p50 = self.stats.latency_p50_ms()
        return 0.0 if p50 is None else p50 / 1000

    # ----------------------------------------------------------------- frames
    async def _process_loop(self) -> None:
        """Take the newest avatar frame, key it off the loop, publish; idle: waiting frame."""
        loop = asyncio.get_running_loop()
        idle = 1.0 / self.options.waiting_fps
        max_age = self.options.max_frame_age
        while True:
            frame = await self._slot.get(timeout=idle)
            room = self._room
            now = time.monotonic()
            self._tick(now)
            if room is None or not room.isconnected():
                continue
            if frame is None:
                if self._video_reader is None:
                    await self._publish_waiting(room, loop)
                elif now - self._last_frame_at > STALL_REPEAT and self._last is not None:
                    # subscribed but the avatar sends nothing (muted, stalled): keep the
                    # track alive with the last picture rather than flash the background
                    self._video.capture(*self._last, time.time_ns() // 1000)
                continue
            if now - frame.received > max_age:
                self.stats.drop("late")
                continue
            if not self._fps_cap.admit(frame.received):
                self.stats.drop("rate")
                continue
            self._last_frame_at = now
            self.stats.resolution = (frame.width, frame.height)
            t = now - self._t0
            try:
                await self._video.ensure(room, frame.width, frame.height)
                data, keying_ms = await loop.run_in_executor(
                    self._pool, self._render, frame.data, frame.width, frame.height, t
                )
                user_us = frame.capture_us or time.time_ns() // 1000
                self._video.capture(data, frame.width, frame.height, user_us)
            except Exception as exc:
                self._frame_failed(exc)
                continue
            self._render_errors = 0
            done = time.monotonic()
            e2e = None
            if frame.capture_us:
                e2e = time.time_ns() / 1000 - frame.capture_us
                e2e = e2e / 1000 if 0 <= e2e < 10_000_000 else None
            self.stats.frame_out(done, keying_ms, (done - frame.received) * 1000, e2e)
            self._last = (data, frame.width, frame.height)
            self._last_avatar = frame
            if not self._first_frame.is_set():
                self._first_frame.set()
                logger.info(
                    "first composited frame published", extra={"session": self.stats.session}
                )

    _last_frame_at = 0.0

    def _render(
        self, data: bytearray, width: int, height: int, t: float
    ) -> tuple[bytearray, float]:
        """Worker thread: key + composite one I420 frame into a fresh buffer.

        The buffer goes to the encoder and stays as the snapshot, so it is never reused.
        """
        t0 = time.perf_counter()
        if self._reset_keyer:
            self._reset_keyer = False
            self._scene.keyer.reset()  # forget what the waiting frames taught it
        buf = bytearray(I420Frame.nbytes_for(width, height))
        out = I420Frame.from_buffer(buf, width, height)
        self._scene.render_i420(I420Frame.from_buffer(data, width, height), t, out=out)
        return buf, (time.perf_counter() - t0) * 1000

    _reset_keyer = False
    _render_errors = 0

    def _frame_failed(self, exc: Exception) -> None:
        """One bad frame (render or publish) is dropped; failing every frame ends the session."""
        self._render_errors += 1
        self.stats.drop("error")
        if self._render_errors == 1:
            logger.error(
                "frame failed: %s",
                exc,
                exc_info=exc,
                extra={"session": self.stats.session},
            )
        if self._render_errors >= MAX_RENDER_ERRORS:
            raise GreenroomError(
                f"{self._render_errors} frames in a row failed ({type(exc).__name__}: {exc})",
                code="frames_failing",
            )

    async def _publish_waiting(self, room: rtc.Room, loop: asyncio.AbstractEventLoop) -> None:
        """While the avatar is away: the background alone (through the scene, so
        background switches and crossfades still show)."""
        w, h = self._video.size or (self.options.width, self.options.height)
        try:
            await self._video.ensure(room, w, h)
            data = await loop.run_in_executor(
                self._pool, self._render_waiting, w, h, time.monotonic() - self._t0
            )
            self._video.capture(data, w, h, time.time_ns() // 1000)
        except Exception as exc:
            self._frame_failed(exc)
            return
        self._last = (data, w, h)
        self.stats.waiting_frame_out()

    def _render_waiting(self, width: int, height: int, t: float) -> bytearray:
        # a frame of pure key colour keys out completely: what is left is the background
        key = self._scene.key_color or DEFAULT_KEY
        if self._waiting_key is None or self._waiting_key[0] != (width, height, key):
            self._waiting_key = ((width, height, key), I420Frame.blank(width, height, key))
        buf = bytearray(I420Frame.nbytes_for(width, height))
        out = I420Frame.from_buffer(buf, width, height)
        self._scene.render_i420(self._waiting_key[1], t, out=out)
        self._reset_keyer = True
        return buf

    _waiting_key: tuple[tuple[int, int, tuple[int, int, int]], I420Frame] | None = None

    # ----------------------------------------------------------------- attributes, RPC, stats
    async def _publish_attributes(self) -> None:
        room = self._room
        if room is None or not room.isconnected():
            return
        attrs = self.attributes_for(self.avatar_identity, self.background)
        self._key_color_attr = _hex(self.key_color)
        attrs[ATTR_KEY_COLOR] = self._key_color_attr
        try:
            await asyncio.wait_for(room.local_participant.set_attributes(attrs), 5.0)
        except Exception as exc:  # attributes are a mirror, not the picture
            logger.warning(
                "could not update attributes: %s", exc, extra={"session": self.stats.session}
            )

    def _resolve_rpc_background(self, value: object) -> BackgroundSpec:
        """What a room participant may ask for (see ``CompositorOptions.rpc_file_paths``)."""
        if self._resolve_background is not None:
            return self._resolve_background(value)
        spec = coerce_background(value)
        if spec.kind in ("image", "video") and not self.options.rpc_file_paths:
            raise InvalidInput(
                "files cannot be chosen over RPC on this compositor; send a colour, "
                "'blur' or 'none' (the Greenroom service also takes library ids)",
                field="background",
            )
        return spec

    async def _rpc_set_background(self, data: rtc.RpcInvocationData) -> str:
        try:
            spec, transition = parse_set_background(data.payload, self._resolve_rpc_background)
            spec = await self.set_background(spec, transition)
        except Exception as exc:
            logger.info(
                "rejected background switch from %s: %s",
                data.caller_identity,
                exc,
                extra={"session": self.stats.session},
            )
            raise to_rpc_error(exc) from None
        seconds = self.options.transition if transition is None else transition
        return json.dumps({"background": json.loads(spec.to_attribute()), "transition": seconds})

    def _tick(self, now: float) -> None:
        """Once a second or so: key colour attribute, periodic stats log."""
        if now - getattr(self, "_last_tick", 0.0) < 1.0:
            return
        self._last_tick = now
        if _hex(self.key_color) != self._key_color_attr and self._room is not None:
            self._spawn(self._publish_attributes(), "greenroom-attributes")
        interval = self.options.stats_interval
        if interval > 0 and now - self._last_stats_log >= interval:
            self._last_stats_log = now
            m = self.stats.snapshot(now)
            logger.info(
                "compositor stats session=%s fps=%.1f in=%d out=%d dropped=%d key_p95=%s "
                "latency_p50=%s latency_p95=%s audio_offset=%s",
                m["session"],
                m["output_fps"],
                m["frames_in"],
                m["frames_out"],
                m["dropped"],
                _ms(m["keying_ms_p95"]),
                _ms(m["latency_ms_p50"]),
                _ms(m["latency_ms_p95"]),
                _ms(m["audio_offset_ms"]),
                extra={"greenroom_stats": m, "session": m["session"]},
            )


def _ms(v: object) -> str:
    return "-" if v is None else f"{float(v):.1f}ms"  # type: ignore[arg-type]
