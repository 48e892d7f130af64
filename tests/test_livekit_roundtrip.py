"""The whole chain on loopback: server, tokens, the rtc SDK, media both ways."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from greenroom.livekit_server import LiveKitServer

pytestmark = pytest.mark.livekit

W, H = 1280, 720


def _pattern(i: int) -> rtc.VideoFrame:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = (np.arange(W, dtype=np.uint16) * 255 // W).astype(np.uint8)
    rgba[..., 1] = (i * 8) % 256
    rgba[..., 3] = 255
    return rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, rgba.tobytes())


async def test_publisher_and_subscriber_exchange_720p_frames(
    livekit: LiveKitServer, room_name: str
) -> None:
    pub_room, sub_room = rtc.Room(), rtc.Room()
    got: asyncio.Queue[rtc.VideoFrame] = asyncio.Queue()
    tasks: set[asyncio.Future[None]] = set()

    @sub_room.on("track_subscribed")
    def _on_track(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.add(asyncio.ensure_future(_drain(track)))

    async def _drain(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track, capacity=2):
            await got.put(ev.frame)

    await sub_room.connect(livekit.url, livekit.token("viewer", room_name))
    await pub_room.connect(livekit.url, livekit.token("publisher", room_name))
    source = rtc.VideoSource(W, H)
    track = rtc.LocalVideoTrack.create_video_track("pattern", source)
    await pub_room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    )

    async def _publish() -> None:
        for i in range(300):
            source.capture_frame(_pattern(i))
            await asyncio.sleep(1 / 30)

    pub_task = asyncio.create_task(_publish())
    try:
        sizes = set()
        while len(sizes) == 0 or (W, H) not in sizes:
            frame = await asyncio.wait_for(got.get(), timeout=20)
            sizes.add((frame.width, frame.height))
        assert (W, H) in sizes
        assert sub_room.remote_participants["publisher"].identity == "publisher"
    finally:
        pub_task.cancel()
        await pub_room.disconnect()
        await sub_room.disconnect()
