"""A session's room with timeouts shorter than the session may live (as LiveKit re-creates it
after a restart, with the server's defaults) is reported once in the log."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from greenroom.api.services.lifetime import Lifetime
from greenroom.api.services.watch import SessionWatch

from .support import make_settings

pytestmark = pytest.mark.unit


async def _no_stop(*_: object) -> None:
    return None


@pytest.mark.parametrize(
    ("empty", "departure", "warned"),
    [(300, 20, True), (86400, 20, True), (86400, 86400, False), (0, 0, False)],
)
def test_short_room_timeouts_are_logged(
    empty: int, departure: int, warned: bool, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(data_dir, room_timeout=3600)
    watch = SessionWatch(settings, None, None, None, _no_stop)  # type: ignore[arg-type]
    live = SimpleNamespace(id="ses_1", room="greenroom-1", lifetime=Lifetime(600.0, 7200.0))
    caplog.set_level(logging.WARNING, logger="greenroom.sessions")
    assert watch._warn_short_room(live, empty, departure) is warned  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    if warned:
        (msg,) = messages
        assert "greenroom-1" in msg and "7200 s" in msg and "room_closed" in msg
    else:
        assert messages == []
