"""Avatar-track selection: which participant is the avatar, which of its tracks to read.

The avatar is the participant whose identity is exactly the one we were given AND who
looks like what we minted for it: its kind is one of ``CompositorOptions.avatar_kinds``
(``agent``: every avatar token Greenroom mints is an agent token) and it carries every
attribute in ``CompositorOptions.avatar_attributes``. A participant with the right identity
but the wrong kind or attributes is an impostor: ignored, with one warning. A participant
carrying ``greenroom.role=compositor`` is never processed (no echo loops).

Frames of the chosen camera go into the frame loop's mailbox; the microphone goes to an
:class:`AudioRetimer` that publishes it on :class:`AudioOutput`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.rtc.room import EventTypes

from greenroom.compositor.audio import AudioOutput, AudioRetimer
from greenroom.compositor.options import (
    ATTR_PUBLISH_ON_BEHALF,
    ATTR_ROLE,
    ROLE_COMPOSITOR,
    CompositorOptions,
)
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.video import (
    InFrame,
    LatestFrameSlot,
    bounded,
    receiver_stats,
    within,
)

logger = logging.getLogger("greenroom.compositor")

VIDEO_STALL = 3.0  # s without a camera frame before the subscription is renewed
DECODE_CHECK = 1.0  # s without a frame before the receiver is asked whether it decodes
DECODE_PROBE = 0.5  # s over which a stalled camera's receiver is watched
HANDOVER = 0.1  # s for a decoded frame to reach a working stream
RESUBSCRIBE_AFTER = 1.0  # s between unsubscribing a stalled camera and subscribing it again
SUBSCRIBE_CONFIRM = 5.0  # s for LiveKit to deliver a camera we subscribed to, else it is renewed
_CAMERA = (rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_UNKNOWN)
_MICROPHONE = (rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackSource.SOURCE_UNKNOWN)


def kind_name(kind: int) -> str:
    """``agent``, ``standard``, ``sip``... for a ``ParticipantKind`` value."""
    try:
        return rtc.ParticipantKind.Name(kind).removeprefix("PARTICIPANT_KIND_").lower()  # type: ignore[arg-type]
    except ValueError:
        return str(kind)


class AvatarTracks:
    """Subscribes to the avatar's camera and microphone in the current room and feeds them on."""

    def __init__(
        self,
        avatar_identity: str,
        options: CompositorOptions,
        stats: SessionStats,
        slot: LatestFrameSlot,
        audio_out: AudioOutput,
        voice_lag: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.avatar_identity = avatar_identity
        self._options = options
        self._stats = stats
        self._slot = slot
        self._audio_out = audio_out
        self._voice_lag = voice_lag  # s the voice reaches us after its picture
        self._room: rtc.Room | None = None
        self._video_sid: str | None = None  # the camera publication we read
        self._avatar_sid: str | None = None  # the participant it belongs to
        self._video_reader: asyncio.Task[None] | None = None
        self._video_stream: rtc.VideoStream | None = None
        self._video_track: rtc.Track | None = None
        self._audio_track: rtc.Track | None = None
        self._renewing: str | None = None  # the camera we unsubscribed to subscribe it again
        self._resubscribed = False  # ... and have subscribed again
        self._confirm: asyncio.TimerHandle | None = None  # checks that the camera arrived
        self._retimer: AudioRetimer | None = None
        self._warned: set[str] = set()  # participant sids already reported as impostors
        self._background: set[asyncio.Task[None]] = set()

    def remote_tracks(self) -> tuple[rtc.Track | None, rtc.Track | None]:
        """The avatar's (microphone, camera) tracks we read, either None while absent."""
        return self._audio_track, self._video_track

    @property
    def reading_video(self) -> bool:
        """True while the avatar's camera is subscribed and read."""
        return self._video_reader is not None

    # ----------------------------------------------------------------- room binding
    def bind(self, room: rtc.Room) -> None:
        """Follow ``room``'s events and pick up what is already published."""
        self._room = room
        self._video_sid = self._avatar_sid = None
        room.on("track_published", self._on_track_published)
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("track_unsubscribed", self._on_track_gone)
        room.on("track_unpublished", self._on_track_unpublished)
        room.on("participant_disconnected", self._on_participant_disconnected)
        room.on("participant_attributes_changed", self._on_attributes_changed)
        room.on("reconnected", self.rescan)
        self.rescan()

    async def unbind(self) -> None:
        """Stop reading and stop following the room's events."""
        room, self._room = self._room, None
        if room is not None:
            handlers: tuple[tuple[EventTypes, Callable[..., object]], ...] = (
                ("track_published", self._on_track_published),
                ("track_subscribed", self._on_track_subscribed),
                ("track_unsubscribed", self._on_track_gone),
                ("track_unpublished", self._on_track_unpublished),
                ("participant_disconnected", self._on_participant_disconnected),
                ("participant_attributes_changed", self._on_attributes_changed),
                ("reconnected", self.rescan),
            )
            for event, handler in handlers:
                room.off(event, handler)
        if self._confirm is not None:
            self._confirm.cancel()
        await self._stop_video()
        await self._stop_audio()
        for task in list(self._background):
            await bounded(task)

    def rescan(self) -> None:
        """Look at every publication again (after joining, and after the SDK resumed a
        connection: a restarted server gives the avatar's tracks new ids). A track the room
        has already subscribed (an agent's room subscribes to everything) is read as it is:
        unsubscribing it only to subscribe it again is what LiveKit once left unconfirmed."""
        room = self._room
        if room is None:
            return
        for p in list(room.remote_participants.values()):
            self._pick_up(p)

    def _pick_up(self, p: rtc.RemoteParticipant) -> None:
        """Subscribe ``p``'s tracks we want, and read those already subscribed."""
        for pub in list(p.track_publications.values()):
            if not pub.subscribed:
                self._on_track_published(pub, p)
            elif pub.track is not None and not self._reading(pub):
                self._on_track_published(pub, p)
                self._on_track_subscribed(pub.track, pub, p)

    def _reading(self, pub: rtc.RemoteTrackPublication) -> bool:
        if pub.kind == rtc.TrackKind.KIND_VIDEO:
            return pub.sid == self._video_sid and self._video_reader is not None
        return self._retimer is not None

    # ----------------------------------------------------------------- who is the avatar
    def agent_of_avatar(self, exclude: str) -> str | None:
        """The agent the (genuine) avatar names in ``lk.publish_on_behalf``, unless ``exclude``."""
        room = self._room
        p = room.remote_participants.get(self.avatar_identity) if room is not None else None
        if p is None or not self.is_avatar(p):
            return None
        agent = p.attributes.get(ATTR_PUBLISH_ON_BEHALF)
        return agent if agent and agent != exclude else None

    def is_avatar(self, p: rtc.RemoteParticipant) -> bool:
        """Exact identity, the kind and attributes we minted, and never a compositor."""
        if p.identity != self.avatar_identity or p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR:
            return False
        problem = self._mismatch(p)
        if problem is None:
            return True
        if p.sid not in self._warned:
            self._warned.add(p.sid)
            logger.warning(
                "participant %r is not the avatar we expect (%s); ignoring it",
                p.identity,
                problem,
                extra={"session": self._stats.session},
            )
        return False

    def _mismatch(self, p: rtc.RemoteParticipant) -> str | None:
        kinds = self._options.avatar_kinds
        if kinds and kind_name(p.kind) not in kinds:
            return f"kind {kind_name(p.kind)}, expected {' or '.join(kinds)}"
        for key, want in self._options.avatar_attributes.items():
            if p.attributes.get(key) != want:
                return f"attribute {key} is {p.attributes.get(key)!r}, expected {want!r}"
        return None

    # ----------------------------------------------------------------- room events
    def _on_track_published(
        self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if not self.is_avatar(p):
            return
        if pub.kind == rtc.TrackKind.KIND_VIDEO and pub.source in _CAMERA:
            current = self._video_sid
            if current not in (None, pub.sid) and current in p.track_publications:
                return  # already on a camera track that still exists
            self._video_sid, self._avatar_sid = pub.sid, p.sid
            pub.set_subscribed(True)
            self._confirm_camera(pub.sid, SUBSCRIBE_CONFIRM)
        elif (
            self._options.audio
            and pub.kind == rtc.TrackKind.KIND_AUDIO
            and pub.source in _MICROPHONE
        ):
            pub.set_subscribed(True)

    def _on_track_subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if not self.is_avatar(p):
            return
        if track.kind == rtc.TrackKind.KIND_VIDEO and pub.sid == self._video_sid:
            if self._resubscribed:  # an earlier subscription landing late is not the renewal:
                self._renewing = None  # our unsubscription of it may still come
            self._start_video(track)
        elif (
            track.kind == rtc.TrackKind.KIND_AUDIO
            and pub.source in _MICROPHONE
            and self._retimer is None
        ):
            source = self._audio_out.source
            if source is not None:
                self._retimer = AudioRetimer(source, self._audio_delay, self._stats)
                self._retimer.start(track)
                self._audio_track = track

    def _on_track_unpublished(
        self, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        self._on_track_gone(None, pub, p)

    def _on_track_gone(
        self, track: rtc.Track | None, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if p.identity != self.avatar_identity:
            return
        if track is not None and pub.sid == self._renewing:
            return  # our own unsubscription: the camera comes back in RESUBSCRIBE_AFTER
        if pub.sid == self._video_sid:
            self._video_sid = None
            self._later(self._stop_video())
            for other in p.track_publications.values():  # another camera may take over
                if other.sid != pub.sid:
                    self._on_track_published(other, p)
        elif pub.kind == rtc.TrackKind.KIND_AUDIO:
            self._later(self._stop_audio())

    def _on_participant_disconnected(self, p: rtc.RemoteParticipant) -> None:
        if p.identity != self.avatar_identity:
            return
        if p.sid not in self._warned:
            logger.info("avatar left; waiting for it", extra={"session": self._stats.session})
        self._drop(p, unsubscribe=False)

    def _on_attributes_changed(self, _changed: dict[str, str], p: rtc.Participant) -> None:
        if not isinstance(p, rtc.RemoteParticipant) or p.identity != self.avatar_identity:
            return
        if self.is_avatar(p):
            self._pick_up(p)
            return
        if p.attributes.get(ATTR_ROLE) == ROLE_COMPOSITOR:
            logger.warning(
                "participant %r is a compositor; not processing it",
                p.identity,
                extra={"session": self._stats.session},
            )
        self._drop(p, unsubscribe=True)

    def _drop(self, p: rtc.RemoteParticipant, *, unsubscribe: bool) -> None:
        """Stop reading ``p`` (it left, or it no longer matches what we expect)."""
        if self._avatar_sid not in (None, p.sid):
            return  # an earlier holder of the identity, already replaced by the one we read
        for pub in p.track_publications.values() if unsubscribe else ():
            pub.set_subscribed(False)
        self._video_sid = self._avatar_sid = None
        self._later(self._stop_video())
        self._later(self._stop_audio())

    # ----------------------------------------------------------------- readers
    def _start_video(self, track: rtc.Track) -> None:
        if self._video_reader is not None:
            self._video_reader.cancel()
        self._video_track = track
        self._video_reader = asyncio.get_running_loop().create_task(
            self._read_video(track), name="greenroom-video-read"
        )
        self._stats.set_avatar_present(True)
        logger.info("subscribed to avatar camera", extra={"session": self._stats.session})

    def _open_stream(self, track: rtc.Track) -> rtc.VideoStream:
        stream = rtc.VideoStream(track, capacity=2, format=rtc.VideoBufferType.I420)
        self._video_stream = stream
        return stream

    async def _read_video(self, track: rtc.Track) -> None:
        """Read the camera into the mailbox; renew the subscription when it stalls."""
        stream = self._open_stream(track)
        while True:
            ev = await self._next_frame(stream, track)
            if ev is None:
                self._stats.video_restarts += 1
                await bounded(stream.aclose())
                self.renew_video_subscription()
                stream = self._open_stream(track)  # read on until the fresh one arrives
                continue
            now = time.monotonic()
            self._stats.frame_in()
            f, meta = ev.frame, ev.metadata
            capture_us = meta.user_timestamp if meta is not None and meta.user_timestamp else None
            self._slot.put(InFrame(f.data, f.width, f.height, now, capture_us))

    async def _next_frame(
        self, stream: AsyncIterator[rtc.VideoFrameEvent], track: rtc.Track
    ) -> rtc.VideoFrameEvent | None:
        """The camera's next frame, or None when it stalled (logged with the receiver's
        decoded frames and packets over ``DECODE_PROBE``).

        Two kinds of stall were seen when two sessions start at once, and a fresh
        subscription ended both: a receiver that lost a packet of its first frames asked
        for a key frame that never came (its requests went on for 10 s), and a receiver
        went on decoding while the SDK's stream handed over none of its frames, also after
        the stream was opened again (2 of 16 session starts). The second is caught after
        ``DECODE_CHECK`` s: frames decoded that do not reach a working stream at once. A
        receiver that decodes nothing (a camera that sends nothing, a key frame on its
        way) gets ``VIDEO_STALL`` s.
        """
        why, decoded, packets = "stalled", 0, 0
        for wait in (DECODE_CHECK, VIDEO_STALL - DECODE_CHECK):
            try:
                # not asyncio.wait_for: a frame that lands as the reader is cancelled can make
                # it swallow the cancel (Python 3.11), and this loop would never end
                return await within(anext(stream), wait)
            except StopAsyncIteration:
                why = "ended"
                decoded, packets = await self._receiving(track)
                break
            except TimeoutError:
                pass
            decoded, packets = await self._receiving(track)
            if decoded > 0:  # a working stream has its next frame by now
                try:
                    return await within(anext(stream), HANDOVER)
                except (TimeoutError, StopAsyncIteration):
                    break
        logger.warning(
            "avatar video %s (the receiver %s, %d packets in %.1f s); renewing the subscription",
            why,
            "decodes frames the stream does not hand over" if decoded > 0 else "decodes nothing",
            packets,
            DECODE_PROBE,
            extra={"session": self._stats.session},
        )
        return None

    @classmethod
    async def _receiving(cls, track: rtc.Track) -> tuple[int, int]:
        """Frames the track's receiver decoded and packets it received over
        ``DECODE_PROBE`` (0, 0 when it cannot say): packets with nothing decoded is a
        decoder waiting for a key frame, neither is a camera that sends nothing."""
        before = await cls._receive_counts(track)
        await asyncio.sleep(DECODE_PROBE)
        after = await cls._receive_counts(track)
        return after[0] - before[0], after[1] - before[1]

    @staticmethod
    async def _receive_counts(track: rtc.Track) -> tuple[int, int]:
        """(frames decoded, packets received) by the track's receiver so far (0, 0 when it
        cannot say)."""
        rtp = await receiver_stats(track, VIDEO_STALL)
        if rtp is None:
            return 0, 0
        return int(rtp.inbound.frames_decoded), int(rtp.received.packets_received)

    def renew_video_subscription(self) -> None:
        """Unsubscribe the camera, and subscribe it again ``RESUBSCRIBE_AFTER`` seconds later
        (``track_subscribed`` then starts a fresh reader). The camera stays the one we read
        meanwhile, and the current reader keeps watching: if the new subscription never
        delivers either, it stalls again and renews again."""
        room, sid = self._room, self._video_sid
        if room is None or sid is None:
            return
        for p in room.remote_participants.values():
            pub = p.track_publications.get(sid)
            if pub is not None:
                self._renewing, self._resubscribed = sid, False
                pub.set_subscribed(False)
                asyncio.get_running_loop().call_later(RESUBSCRIBE_AFTER, self._resubscribe, pub)

    def _confirm_camera(self, sid: str, after: float) -> None:
        """Renew the camera's subscription if LiveKit has not delivered it ``after`` seconds
        from now (and again, until it does or another camera takes over). Seen on a loaded
        machine: a subscription asked for soon after an unsubscription of the same track was
        never confirmed, and the first frame never came."""
        if self._confirm is not None:
            self._confirm.cancel()
        self._confirm = asyncio.get_running_loop().call_later(after, self._camera_arrived, sid)

    def _camera_arrived(self, sid: str) -> None:
        self._confirm = None
        if self._room is None or self._video_sid != sid or self._video_reader is not None:
            return
        logger.warning(
            "LiveKit has not delivered the avatar camera in time after subscribing; "
            "subscribing again",
            extra={"session": self._stats.session},
        )
        self.renew_video_subscription()
        self._confirm_camera(sid, RESUBSCRIBE_AFTER + SUBSCRIBE_CONFIRM)

    def _resubscribe(self, pub: rtc.RemoteTrackPublication) -> None:
        if self._room is not None and self._video_sid == pub.sid:
            self._resubscribed = True
            pub.set_subscribed(True)

    async def _stop_video(self) -> None:
        self._renewing = None
        self._resubscribed = False
        reader, self._video_reader = self._video_reader, None
        stream, self._video_stream = self._video_stream, None
        self._video_track = None
        self._slot.clear()
        self._stats.set_avatar_present(False)
        if reader is not None:
            reader.cancel()
            await bounded(reader)
        if stream is not None:
            await bounded(stream.aclose())

    async def _stop_audio(self) -> None:
        retimer, self._retimer = self._retimer, None
        self._audio_track = None
        if retimer is not None:
            await retimer.aclose()

    def _audio_delay(self) -> float:
        """The video path's latency (p50), less what the voice already lags at our receiver
        (the frame loop holds the picture for the rest; see ``lip_sync``)."""
        p50 = self._stats.latency_p50_ms()
        return 0.0 if p50 is None else max(p50 / 1000 - self._voice_lag(), 0.0)

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a stop step from a (synchronous) room event; ``unbind`` waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
