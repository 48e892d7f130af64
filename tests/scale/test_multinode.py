"""Greenroom on a multi-node LiveKit deployment: two ``livekit-server`` nodes sharing one Redis.

A room is pinned to one node (node A here). The built-in avatar and the compositor join through
node A's URL; a viewer joins the same room through node B's URL, which relays its signalling to
node A over Redis, and sees the composited picture, as does a viewer on node A. Node B's API
lists the room and everyone in it.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
from livekit import api

from compositor.conftest import FIRST_FRAME, Viewer, ViewerFrame, one_layer, region_masks
from fixtures.redis import RedisServer
from greenroom.avatars import RoomTarget
from greenroom.avatars.local import AvatarRenderer, LocalAvatar
from greenroom.compositor import Compositor

from .conftest import Node

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)


async def test_viewer_on_other_node_sees_composited_room(
    two_nodes: tuple[Node, Node], redis_server: RedisServer, room_name: str
) -> None:
    a, b = two_nodes
    assert a.server.url != b.server.url and a.node_id != b.node_id
    async with a.api() as lk_a:
        await lk_a.room.create_room(
            api.CreateRoomRequest(name=room_name, node_id=a.node_id, empty_timeout=300)
        )
    # the room lives on node A, and every node can look that up in Redis
    assert redis_server.cli("HGET", "room_node_map", room_name) == [a.node_id]

    on_a, on_b = a.target(room_name), b.target(room_name)
    avatar = await LocalAvatar.start(
        RoomTarget(on_a.url, on_a.api_key, on_a.api_secret, on_a.room), identity="presenter"
    )
    comp: Compositor | None = None
    viewers: list[Viewer] = []
    try:
        comp = await Compositor.start(on_a, "presenter", "#0044ff", one_layer())
        # one viewer through each node; B relays the viewer's signalling to A through Redis
        viewers.append(await Viewer().join(on_b, identity="viewer-on-b"))
        viewers.append(await Viewer().join(on_a, identity="viewer-on-a"))
        await comp.wait_first_frame(FIRST_FRAME)
        # frames that left the compositor before the avatar's first one are background only
        composited_since = time.monotonic() + 1.0
        # where the picture is background whatever the presenter does (a twin renderer)
        twin = AvatarRenderer(1280, 720, seed=avatar.renderer.seed)
        alphas = np.stack([twin.render(t, 0.5, noise=False)[1] for t in np.arange(0, 4, 0.5)])
        bg, _ = region_masks(alphas.max(0), margin=12)
        assert bg.sum() > 200_000

        def full_size(f: ViewerFrame) -> bool:
            return f.rgb.shape == (720, 1280, 3) and f.received > composited_since

        for viewer in viewers:
            frame = await viewer.until(comp.identity, full_size, 120)
            err = np.abs(frame.rgb[bg].astype(float) - BLUE).mean()
            who = viewer.room.local_participant.identity
            assert err < 20, f"{who}: background off blue by {err:.1f}"

        # node B's API answers for a room it does not host (routed through Redis)
        async with b.api() as lk_b:
            rooms = await lk_b.room.list_rooms(api.ListRoomsRequest())
            assert room_name in {r.name for r in rooms.rooms}
            people = await lk_b.room.list_participants(api.ListParticipantsRequest(room=room_name))
            assert {"presenter", comp.identity, "viewer-on-a", "viewer-on-b"} <= {
                p.identity for p in people.participants
            }
    finally:
        for viewer in viewers:
            await viewer.aclose()
        if comp is not None:
            await comp.aclose()
        await avatar.aclose()
        # LiveKit may have closed it already: only agents were left once the viewer went
        async with a.api() as lk_a:
            with contextlib.suppress(api.TwirpError):
                await lk_a.room.delete_room(api.DeleteRoomRequest(room=room_name))
