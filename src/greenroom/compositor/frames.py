"""The frame loop: newest avatar frame -> key + composite on the worker thread -> publish.

A composited frame goes to the encoder at once, or, while the avatar's voice reaches us
later than its picture (``lip_sync``), not before ``received + lag``: such frames wait in
order in a small queue, so the keying thread never sleeps.

While the avatar is away the loop publishes the background alone (a frame of pure key
colour keyed through the scene) at ``waiting_fps``; while it is subscribed but silent
it repeats the last picture so the track stays alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from greenroom.backgrounds import BackgroundSpec, Scene
from greenroom.compositor.alpha_pack import blank_packed, pack, packed_size
from greenroom.compositor.options import CompositorOptions
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.video import FpsCap, InFrame, LatestFrameSlot, VideoOutput, bounded
from greenroom.errors import GreenroomError
from greenroom.keying import I420Frame
from greenroom.keying.params import DEFAULT_KEY

logger = logging.getLogger("greenroom.compositor")

MAX_RENDER_ERRORS = 60  # consecutive failed frames before the session gives up
STALL_REPEAT = 1.0  # s without avatar frames before the last picture is repeated

Picture = tuple[bytearray, int, int]  # I420 bytes, width, height


def _name_os_thread(name: bytes = b"greenroom-key") -> None:
    """Name the keying thread for the OS too (top -H, /proc), so its CPU is visible."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class _Held:
    """A composited frame waiting for its voice."""

    due: float  # monotonic time it may go to the encoder
    frame: InFrame
    data: bytearray
    width: int
    height: int
    keying_ms: float


class FrameLoop:
    """Keys and publishes frames for one compositor; the scene is touched only on its thread.

    ``room()`` is the connected room or None (between connections); ``avatar_subscribed()``
    tells a silent avatar (repeat the last picture) from an absent one (background alone).
    """

    def __init__(
        self,
        scene: Scene,
        options: CompositorOptions,
        stats: SessionStats,
        room: Callable[[], rtc.Room | None],
        avatar_subscribed: Callable[[], bool],
        hold: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.scene = scene
        self.slot = LatestFrameSlot(stats)
        self.output = VideoOutput(options)
        self.first_frame = asyncio.Event()
        self.last: Picture | None = None  # the latest published frame (the snapshot)
        self._options = options
        self._stats = stats
        self._room = room
        self._avatar_subscribed = avatar_subscribed
        self._hold = hold  # s a frame waits after it was received, for its voice
        self._held: asyncio.Queue[_Held] = asyncio.Queue()
        self._pending: list[bytearray] = []  # output buffers of held frames
        self._last_due = 0.0
        self._pool = ThreadPoolExecutor(
            1, thread_name_prefix="greenroom-key", initializer=_name_os_thread
        )
        self._fps_cap = FpsCap(options.max_fps)
        self._t0 = time.monotonic()
        self._last_frame_at = 0.0  # monotonic time of the last avatar frame taken
        self._errors = 0  # consecutive failed frames
        self._reset_keyer = False  # set by waiting frames; read on the worker thread
        self._waiting: tuple[tuple[int, int, tuple[int, int, int]], I420Frame] | None = None
        self._packed = options.output == "alpha_packed"
        self._pack_scratch: tuple[I420Frame, np.ndarray, I420Frame] | None = None
        self._out_bufs: list[bytearray] = []  # two output buffers, used in turn

    def warm_up(self) -> None:
        """Compile/load the keyer's kernels on the worker thread while we connect."""

        def warm() -> None:
            scene = Scene(background=BackgroundSpec.parse("#000000"), mode=self._options.mode)
            scene.render_i420(I420Frame.blank(64, 64, DEFAULT_KEY), 0.0)
            scene.close()
            if self._packed:
                blank = I420Frame.blank(64, 64)
                pack(blank, np.zeros((64, 64), np.uint8), I420Frame.empty(128, 64))

        fut = asyncio.get_running_loop().run_in_executor(self._pool, warm)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def run(self) -> None:
        """Take the newest avatar frame, key it off the loop, publish; idle: waiting frame.

        Raises:
            GreenroomError: ``MAX_RENDER_ERRORS`` frames in a row failed.
        """
        idle = 1.0 / self._options.waiting_fps
        sender = asyncio.get_running_loop().create_task(self._send_held(), name="greenroom-hold")
        try:
            while True:
                frame = await self.slot.get(timeout=idle)
                if sender.done():  # it failed (frames failing): so does the loop
                    sender.result()
                room = self._room()
                if room is None or not room.isconnected():
                    continue
                if frame is None:
                    await self._idle(room)
                elif self._admit(frame):
                    await self._composite(room, frame)
        finally:
            sender.cancel()
            await bounded(sender)

    def _admit(self, frame: InFrame) -> bool:
        now = time.monotonic()
        # a late frame is dropped, unless dropping it would freeze the picture: on a machine
        # that is late with every frame, one a second still goes out
        stalled = now - self._last_frame_at > STALL_REPEAT
        if now - frame.received > self._options.max_frame_age and not stalled:
            self._stats.drop("late")
            return False
        if not self._fps_cap.admit(frame.received):
            self._stats.drop("rate")
            return False
        return True

    async def _composite(self, room: rtc.Room, frame: InFrame) -> None:
        now = time.monotonic()
        self._last_frame_at = now
        self._stats.resolution = (frame.width, frame.height)
        w, h = frame.width, frame.height
        ow, oh = packed_size(w, h) if self._packed else (w, h)
        hold = self._hold()
        loop = asyncio.get_running_loop()
        try:
            await self.output.ensure(room, ow, oh)
            if hold <= 0 and not self._pending:  # no lag to wait for: render and send at once
                data, keying_ms = await loop.run_in_executor(
                    self._pool, self._render_and_capture, frame, ow, oh, now - self._t0
                )
            else:
                data, keying_ms = await loop.run_in_executor(
                    self._pool, self._render, frame.data, w, h, now - self._t0
                )
                # in order, and never before a frame received earlier
                self._last_due = max(frame.received + hold, self._last_due)
                self._pending.append(data)
                self._held.put_nowait(_Held(self._last_due, frame, data, ow, oh, keying_ms))
                return
        except Exception as exc:
            self._failed(exc)
            return
        self._published(frame, data, ow, oh, keying_ms)

    async def _send_held(self) -> None:
        """Hand held frames to the encoder, each at its due time (on the keying thread,
        which keeps captures in order with the frames it sends itself)."""
        loop = asyncio.get_running_loop()
        while True:
            held = await self._held.get()
            wait = held.due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            capture_us = held.frame.capture_us or _now_us()
            try:
                await loop.run_in_executor(
                    self._pool, self.output.capture, held.data, held.width, held.height, capture_us
                )
            except Exception as exc:
                self._failed(exc)
                continue
            finally:
                self._pending = [b for b in self._pending if b is not held.data]
            self._published(held.frame, held.data, held.width, held.height, held.keying_ms)

    def _published(
        self, frame: InFrame, data: bytearray, width: int, height: int, keying_ms: float
    ) -> None:
        """Account for a composited frame handed to the encoder; it is the snapshot now."""
        self._errors = 0
        done = time.monotonic()
        e2e: float | None = None
        if frame.capture_us:
            e2e_us = _now_us() - frame.capture_us
            e2e = e2e_us / 1000 if 0 <= e2e_us < 10_000_000 else None
        self._stats.frame_out(done, keying_ms, (done - frame.received) * 1000, e2e)
        self.last = (data, width, height)
        if not self.first_frame.is_set():
            self.first_frame.set()
            logger.info("first composited frame published", extra={"session": self._stats.session})

    async def _idle(self, room: rtc.Room) -> None:
        if not self._avatar_subscribed():
            await self._publish_waiting(room)
        elif time.monotonic() - self._last_frame_at > STALL_REPEAT and self.last is not None:
            # subscribed but the avatar sends nothing (muted, stalled): keep the track
            # alive with the last picture rather than flash the background
            await self._capture_off_loop(*self.last)

    def _out_buffer(self, nbytes: int) -> bytearray:
        """Worker thread: an output buffer that is neither the published snapshot nor a
        held frame's.

        Reused in turn: the encoder copies a frame when it is captured, so only
        ``self.last`` (the snapshot, read on the loop) and the frames still waiting for
        their voice must stay untouched. A fresh zero-filled 1.4 MB buffer per 720p frame
        cost the keying thread page faults and a memset on every frame.
        """
        busy = [*self._pending, self.last[0]] if self.last is not None else [*self._pending]
        for buf in self._out_bufs:
            if len(buf) == nbytes and all(buf is not b for b in busy):
                return buf
        buf = bytearray(nbytes)
        kept = [b for b in self._out_bufs if len(b) == nbytes and any(b is x for x in busy)]
        self._out_bufs = [*kept, buf]
        return buf

    async def _capture_off_loop(self, data: bytearray, width: int, height: int) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._pool, self.output.capture, data, width, height, _now_us()
        )

    def _render_and_capture(
        self, frame: InFrame, out_w: int, out_h: int, t: float
    ) -> tuple[bytearray, float]:
        """Worker thread: render, then hand the frame to the encoder.

        Capturing here keeps the event loop free: with simulcast, LiveKit's
        ``capture_frame`` returns only after about one encode (~6 ms at 720p, measured;
        0.3 ms of it CPU), which on the loop would stall every other session's frames
        and audio in the process."""
        data, keying_ms = self._render(frame.data, frame.width, frame.height, t)
        self.output.capture(data, out_w, out_h, frame.capture_us or _now_us())
        return data, keying_ms

    def _render(
        self, data: bytearray | memoryview, width: int, height: int, t: float
    ) -> tuple[bytearray, float]:
        """Worker thread: key + composite one I420 frame into the spare output buffer."""
        t0 = time.perf_counter()
        if self._reset_keyer:
            self._reset_keyer = False
            self.scene.keyer.reset()  # forget what the waiting frames taught it
        if self._packed:
            return self._render_packed(data, width, height), (time.perf_counter() - t0) * 1000
        buf = self._out_buffer(I420Frame.nbytes_for(width, height))
        out = I420Frame.from_buffer(buf, width, height)
        self.scene.render_i420(I420Frame.from_buffer(data, width, height), t, out=out)
        return buf, (time.perf_counter() - t0) * 1000

    def _render_packed(self, data: bytearray | memoryview, width: int, height: int) -> bytearray:
        """Key over black (premultiplied colour) with the matte from the same pass, then
        pack both side by side (see ``alpha_pack``)."""
        scratch = self._pack_scratch
        if scratch is None or scratch[0].size != (width, height):
            scratch = (
                I420Frame.empty(width, height),
                np.empty((height, width), np.uint8),
                I420Frame.blank(width, height),
            )
            self._pack_scratch = scratch
        keyed, alpha, black = scratch
        self.scene.keyer.composite_i420(
            I420Frame.from_buffer(data, width, height), black, keyed, alpha_out=alpha
        )
        buf = bytearray(I420Frame.nbytes_for(*packed_size(width, height)))
        pack(keyed, alpha, I420Frame.from_buffer(buf, *packed_size(width, height)))
        return buf

    def _failed(self, exc: Exception) -> None:
        """One bad frame (render or publish) is dropped; failing every frame ends the session."""
        self._errors += 1
        self._stats.drop("error")
        if self._errors == 1:
            logger.error(
                "frame failed: %s", exc, exc_info=exc, extra={"session": self._stats.session}
            )
        if self._errors >= MAX_RENDER_ERRORS:
            raise GreenroomError(
                f"{self._errors} frames in a row failed ({type(exc).__name__}: {exc})",
                code="frames_failing",
            )

    async def _publish_waiting(self, room: rtc.Room) -> None:
        """While the avatar is away: the background alone (through the scene, so
        background switches and crossfades still show)."""
        w, h = self.output.size or (self._options.width, self._options.height)
        if self._packed and self.output.size is None:
            w, h = packed_size(w, h)
        try:
            await self.output.ensure(room, w, h)
            if self._packed:  # nothing to show: matte 0 everywhere
                data = blank_packed(w // 2, h)
            else:
                data = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self._render_waiting, w, h, time.monotonic() - self._t0
                )
            await self._capture_off_loop(data, w, h)
        except Exception as exc:
            self._failed(exc)
            return
        self.last = (data, w, h)
        self._stats.waiting_frame_out()

    def _render_waiting(self, width: int, height: int, t: float) -> bytearray:
        # a frame of pure key colour keys out completely: what is left is the background
        key = self.scene.key_color or DEFAULT_KEY
        if self._waiting is None or self._waiting[0] != (width, height, key):
            self._waiting = ((width, height, key), I420Frame.blank(width, height, key))
        buf = bytearray(I420Frame.nbytes_for(width, height))
        out = I420Frame.from_buffer(buf, width, height)
        self.scene.render_i420(self._waiting[1], t, out=out)
        self._reset_keyer = True
        return buf

    async def wait_first(self, timeout: float, *, until: asyncio.Event) -> bool:
        """Wait up to ``timeout`` s for the first published avatar frame, or for ``until``;
        returns whether the first frame is out."""
        waiter = asyncio.ensure_future(self.first_frame.wait())
        other = asyncio.ensure_future(until.wait())
        try:
            await asyncio.wait(
                {waiter, other}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            other.cancel()
        return self.first_frame.is_set()

    def snapshot_png(self) -> bytes | None:
        """The latest published frame as PNG, or None before the first one."""
        if self.last is None:
            return None
        from PIL import Image

        data, w, h = self.last
        rgb = I420Frame.from_buffer(data, w, h).to_rgb()
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
        return buf.getvalue()

    async def close(self) -> None:
        """Let a frame in flight finish, then release the scene's sources."""
        await bounded(asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True))
        with contextlib.suppress(Exception):
            self.scene.close()
