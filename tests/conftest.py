"""Shared fixtures: a real LiveKit server on loopback, room names, tokens.

Every test module must set ``pytestmark`` to one of the category markers
(``unit``, ``livekit``, ``browser``, ``postgres``); collection fails otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenroom.config import get_settings
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port

pytest_plugins = ["fixtures.postgres", "fixtures.redis"]

CATEGORIES = {"unit", "livekit", "browser", "postgres"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = sorted(
        {
            item.module.__name__
            for item in items
            if item.module is not None and not CATEGORIES & {m.name for m in item.iter_markers()}
        }
    )
    if missing:
        raise pytest.UsageError(
            f"test modules without a category marker {sorted(CATEGORIES)}: {', '.join(missing)}"
        )


@pytest.fixture(scope="session")
def livekit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """One real LiveKit server for the whole test session, on free loopback ports."""
    binary = ensure_binary(get_settings().cache_dir)
    log = tmp_path_factory.mktemp("livekit") / "livekit.log"
    # Tests never take 7880: a user's demo may be running there.
    server = LiveKitServer.start(binary=binary, port=free_port(), log_path=log)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def livekit_short_rooms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """A second LiveKit server whose own rooms close fast when only agents are in them
    (``empty_timeout`` 10 s, ``departure_timeout`` 3 s): sessions must outlive that."""
    binary = ensure_binary(get_settings().cache_dir)
    log = tmp_path_factory.mktemp("livekit-short") / "livekit.log"
    server = LiveKitServer.start(
        binary=binary, port=free_port(), log_path=log, empty_timeout=10, departure_timeout=3
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def room_name(request: pytest.FixtureRequest) -> str:
    """A fresh room per test, named after it."""
    return f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
