"""A relay participant: from an avatar in a vendor-hosted room into our room.

HeyGen's Streaming API and LiveAvatar FULL mode host the LiveKit room themselves. The relay
joins *their* room with the client token the vendor returns, subscribes to the avatar's camera
and microphone, and republishes the raw frames into *our* room under its own identity. The
compositor then keys that identity as it would any avatar. Data messages from the vendor room
(the avatar's talking events) are handed to ``on_data``; :meth:`send_data` talks back.

Cost: one extra decode and encode per frame compared with an avatar publishing into our room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc

from greenroom.avatars.base import STATE_ATTRIBUTE, RoomTarget

log = logging.getLogger(__name__)

DataHandler = Callable[[bytes, str | None, str], None]  # payload, topic, sender identity
CONNECT_TIMEOUT = 30.0  # seconds for each room connection
CLOSE_TIMEOUT = 10.0  # seconds for each step of closing
LAST_WORD_GRACE = 2.0
"""Seconds the vendor's last data message (why the session ended) may trail the avatar's
leaving: data and the leave reach us by different paths, and on a loaded machine the leave
came first. The vendor's own reason wins when it comes within this time."""


class Relay:
    """Republishes one remote avatar participant into another room.

    Use :meth:`start`; ``identity`` is who the compositor subscribes to in our room.
    """

    def __init__(self, target: RoomTarget, identity: str, source_identity: str | None) -> None:
        self.target = target
        self.identity = identity
        self.source_identity = source_identity
        self.src = rtc.Room()
        self.dst = rtc.Room()
        self._video_source: rtc.VideoSource | None = None
        self._audio_source = rtc.AudioSource(48_000, 1, queue_size_ms=200)
        self._tasks: set[asyncio.Task[None]] = set()
        self._video_ready = asyncio.Event()
        self._audio_ready = asyncio.Event()
        self._data_handlers: list[DataHandler] = []
        self._closed = False
        self.frames = 0
        self.source_participant: str | None = None
        self.disconnected = asyncio.Event()
        self._gone_handlers: list[Callable[[str], None]] = []
        self._gone_why: str | None = None
        self._gone_event = asyncio.Event()

    @classmethod
    async def start(
        cls,
        *,
        source_url: str,
        source_token: str,
        target: RoomTarget,
        identity: str,
        source_identity: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> Relay:
        """Join both rooms and start relaying whatever the avatar publishes (now or later)."""
        relay = cls(target, identity, source_identity)
        try:
            await relay._connect(source_url, source_token, attributes or {})
        except BaseException:
            await relay.aclose()
            raise
        return relay

    async def _connect(self, url: str, token: str, attributes: dict[str, str]) -> None:
        attrs = {STATE_ATTRIBUTE: "idle", **attributes}
        await asyncio.wait_for(
            self.dst.connect(
                self.target.url,
                self.target.agent_token(self.identity, attributes=attrs),
                rtc.RoomOptions(auto_subscribe=False),
            ),
            CONNECT_TIMEOUT,
        )
        audio_track = rtc.LocalAudioTrack.create_audio_track("microphone", self._audio_source)
        await self.dst.local_participant.publish_track(
            audio_track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )

        @self.src.on("track_subscribed")
        def _on_track(
            track: rtc.Track, _pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            if not self._wanted(p):
                return
            self.source_participant = p.identity
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self.spawn(self._pump_video(track))
            elif track.kind == rtc.TrackKind.KIND_AUDIO:
                self.spawn(self._pump_audio(track))

        @self.src.on("data_received")
        def _on_data(packet: rtc.DataPacket) -> None:
            sender = packet.participant.identity if packet.participant else ""
            for handler in list(self._data_handlers):
                try:
                    handler(bytes(packet.data), packet.topic or None, sender)
                except Exception:
                    log.exception("relay data handler failed")

        @self.src.on("participant_disconnected")
        def _on_left(p: rtc.RemoteParticipant) -> None:
            if p.identity == self.source_participant:
                why = f"the avatar {p.identity!r} left the vendor's room"
                asyncio.get_running_loop().call_later(LAST_WORD_GRACE, self._gone, why)

        @self.src.on("disconnected")
        def _on_disconnected(*_args: object) -> None:
            self.disconnected.set()
            self._gone("disconnected from the vendor's room")

        await asyncio.wait_for(
            self.src.connect(url, token, rtc.RoomOptions(auto_subscribe=True)), CONNECT_TIMEOUT
        )

    def _wanted(self, p: rtc.RemoteParticipant) -> bool:
        if self.source_identity:
            return p.identity == self.source_identity
        return self.source_participant is None or p.identity == self.source_participant

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the loop; cancelled when the relay closes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump_video(self, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track, capacity=2)  # native buffers: no conversion
        try:
            async for event in stream:
                frame = event.frame
                if self._video_source is None:
                    self._video_source = rtc.VideoSource(frame.width, frame.height)
                    video = rtc.LocalVideoTrack.create_video_track("camera", self._video_source)
                    await self.dst.local_participant.publish_track(
                        video,
                        rtc.TrackPublishOptions(
                            source=rtc.TrackSource.SOURCE_CAMERA,
                            simulcast=False,
                            video_encoding=rtc.VideoEncoding(
                                max_bitrate=4_000_000, max_framerate=30
                            ),
                        ),
                    )
                self._video_source.capture_frame(frame)
                self.frames += 1
                self._video_ready.set()
        finally:
            await stream.aclose()

    async def _pump_audio(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48_000, num_channels=1, frame_size_ms=10)
        try:
            async for event in stream:
                await self._audio_source.capture_frame(event.frame)
                self._audio_ready.set()
        finally:
            await stream.aclose()

    def on_source_gone(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(why)`` once if the avatar leaves or the vendor room drops us."""
        self._gone_handlers.append(handler)

    def _gone(self, why: str) -> None:
        if self._closed or self._gone_why is not None:
            return
        self._gone_why = why
        self._gone_event.set()
        handlers, self._gone_handlers = self._gone_handlers, []
        for handler in handlers:
            try:
                handler(why)
            except Exception:
                log.exception("relay source-gone handler failed")

    def on_data(self, handler: DataHandler) -> None:
        self._data_handlers.append(handler)

    async def send_data(self, payload: bytes, topic: str | None = None) -> None:
        """Publish a reliable data message into the vendor's room."""
        await self.src.local_participant.publish_data(payload, reliable=True, topic=topic or "")

    async def set_state(self, state: str) -> None:
        with contextlib.suppress(Exception):
            await self.dst.local_participant.set_attributes({STATE_ATTRIBUTE: state})

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the first relayed video frame.

        Raises:
            TimeoutError: the avatar published no video within ``timeout`` seconds.
            ConnectionError: the avatar left (or the vendor room dropped us) before that.
        """
        ready = asyncio.ensure_future(self._video_ready.wait())
        gone = asyncio.ensure_future(self._gone_event.wait())
        try:
            await asyncio.wait({ready, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            gone.cancel()
        if self._video_ready.is_set():
            return
        if self._gone_why is not None:
            raise ConnectionError(f"{self._gone_why} before sending video")
        raise TimeoutError(f"no video from the avatar within {timeout:g} s")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT)
        for room in (self.src, self.dst):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await self._audio_source.aclose()
