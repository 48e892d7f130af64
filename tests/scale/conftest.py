"""Fixtures for scale-out tests: two LiveKit nodes on one Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from livekit import api

from compositor.conftest import Target
from fixtures.redis import RedisServer
from greenroom.config import get_settings
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

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
