"""The rooms Greenroom creates ask every video receiver to hold the picture for lip-sync.

A receiver holds the voice in an audio jitter buffer and the picture hardly at all, so
without help the lips move before the voice arrives. The room's ``min_playout_delay``
(``video_playout_delay_ms``) reaches each receiver in the video's RTP, and the receiver's
own statistics show its video jitter buffer aiming at it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from greenroom.api.services.rooms import Rooms
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import viewer_token

from .support import make_settings

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

DELAY_MS = 300  # far above what a receiver on loopback aims at by itself (10-40 ms)


async def _video_target_delay_ms(lk: LiveKitServer, room: str) -> float:
    """Publish 320x180 video into ``room`` for a few seconds; the subscriber's mean
    jitter-buffer target delay over the frames it decoded, ms."""
    from livekit import api

    token = (
        api.AccessToken(lk.api_key, lk.api_secret)
        .with_identity("publisher")
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )
    pub_room, sub_room = rtc.Room(), rtc.Room()
    subscribed: asyncio.Future[rtc.RemoteVideoTrack] = asyncio.get_running_loop().create_future()

    @sub_room.on("track_subscribed")
    def _on(track: rtc.Track, *_: object) -> None:
        if isinstance(track, rtc.RemoteVideoTrack) and not subscribed.done():
            subscribed.set_result(track)

    await pub_room.connect(lk.url, token)
    await sub_room.connect(
        lk.url, viewer_token(lk.api_key, lk.api_secret, room=room, identity="viewer")
    )
    try:
        source = rtc.VideoSource(320, 180)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        await pub_room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        remote = await asyncio.wait_for(subscribed, 30)
        stream = rtc.VideoStream(remote)
        drain = asyncio.create_task(_drain(stream))
        pixels = np.zeros((180 * 320 * 3 // 2,), np.uint8)
        for i in range(30 * 6):  # 6 s at 30 fps: moving content, so every frame is coded
            pixels[: 320 * 180] = (i * 7) % 256
            frame = rtc.VideoFrame(320, 180, rtc.VideoBufferType.I420, pixels.tobytes())
            source.capture_frame(frame)
            await asyncio.sleep(1 / 30)
        drain.cancel()
        for st in await remote.get_stats():
            if st.WhichOneof("stats") == "inbound_rtp":
                inbound = st.inbound_rtp.inbound
                assert inbound.jitter_buffer_emitted_count > 30, "too few frames decoded"
                return (
                    1000 * inbound.jitter_buffer_target_delay / inbound.jitter_buffer_emitted_count
                )
        raise AssertionError("the subscriber reported no inbound video")
    finally:
        await pub_room.disconnect()
        await sub_room.disconnect()


async def _drain(stream: rtc.VideoStream) -> None:
    async for _ in stream:
        pass


@pytest.mark.parametrize("delay_ms", [DELAY_MS, 0])
async def test_rooms_greenroom_creates_hold_video_for_lip_sync(
    delay_ms: int, livekit: LiveKitServer, room_name: str, data_dir: Path
) -> None:
    rooms = Rooms(make_settings(data_dir, livekit, video_playout_delay_ms=delay_ms))
    try:
        assert (await rooms.ensure(room_name, 600)).created
        target = await _video_target_delay_ms(livekit, room_name)
    finally:
        await rooms.delete(room_name)
        await rooms.aclose()
    if delay_ms:
        assert target >= 0.8 * delay_ms, f"video target delay {target:.0f} ms"
    else:
        assert target < DELAY_MS / 2, f"video target delay {target:.0f} ms with no playout delay"
