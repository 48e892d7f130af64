"""Greenroom on a multi-node LiveKit deployment: two ``livekit-server`` nodes sharing one Redis.

A room is pinned to one node (node A here). The built-in avatar and the compositor join through
node A's URL; a viewer joins the same room through node B's URL, which relays its signalling to
node A over Redis, and sees the composited picture, as does a viewer on node A. Node B's API
lists the room and everyone in it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from livekit import api

from compositor.conftest import FIRST_FRAME, Target, Viewer, ViewerFrame, one_layer, region_masks
from fixtures.redis import RedisServer
from greenroom.avatars import RoomTarget
from greenroom.avatars.local import AvatarRenderer, LocalAvatar
from greenroom.compositor import Compositor
from greenroom.config import get_settings
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)
NODE_REGISTERED = 60.0
"""Bound for a node to appear in Redis's ``nodes`` hash after it answers (it registers first)."""


@dataclass
class Node:
    server: LiveKitServer
    node_id: str  # LiveKit's id for it, as Redis knows it

    def target(self, room: str) -> Target:
        s = self.server
        return Target(s.url, s.api_key, s.api_secret, room)

    def api(self) -> api.LiveKitAPI:
        s = self.server
        return api.LiveKitAPI(s.http_url, s.api_key, s.api_secret)


def _new_node_id(redis: RedisServer, known: set[str]) -> str:
    deadline = time.monotonic() + NODE_REGISTERED
    while time.monotonic() < deadline:
        new = set(redis.cli("HKEYS", "nodes")) - known
        if new:
            assert len(new) == 1, f"more than one new LiveKit node in Redis: {sorted(new)}"
            return new.pop()
        time.sleep(0.2)
    raise TimeoutError(f"no new LiveKit node in Redis within {NODE_REGISTERED:g} s")


@pytest.fixture(scope="module")
def two_nodes(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Node, Node]]:
    """Nodes A and B on free loopback ports, one Redis; rooms go to the least-loaded node."""
    binary = ensure_binary(get_settings().cache_dir)
    servers: list[LiveKitServer] = []
    nodes: list[Node] = []
    try:
        for name in ("a", "b"):
            known = set(redis_server.cli("HKEYS", "nodes"))
            log = tmp_path_factory.mktemp(f"livekit-{name}") / "livekit.log"
            server = LiveKitServer.start(
                binary=binary,
                port=free_port(),
                log_path=log,
                redis=redis_server.address,
                node_selector="sysload",
            )
            servers.append(server)
            nodes.append(Node(server, _new_node_id(redis_server, known)))
        yield nodes[0], nodes[1]
    finally:
        for server in servers:
            server.stop()


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
