"""A start or a sentence whose answer is lost is never sent again blindly (real LiveKit server,
the built-in avatar behind the emulators): the vendor's list settles a lost start, and a lost
``streaming.task`` is reported instead of spoken twice."""

from __future__ import annotations

import httpx
import pytest

from greenroom.avatars import AvatarState, RoomTarget, get_provider
from greenroom.avatars._http import RetryPolicy
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.errors import ProviderError

from .conftest import serve

pytestmark = pytest.mark.livekit

FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, budget=2.0)


async def test_liveavatar_start_answered_too_late_is_stopped_not_resent(
    target: RoomTarget, emu_config
) -> None:
    """The avatar joined but the start's answer (with the session's socket URL) was lost: the
    list shows the session running, so it is stopped rather than started a second time.
    (A start may take three times ``timeout``: 6 s here, less than the 10 s stall.)"""
    emu_config.stall_next(1, 10.0, path="/v1/sessions/start")
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(ProviderError) as err:
            await get_provider("liveavatar").start(
                target,
                avatar_id="a",
                api_key="dev",
                base_url=url,
                client=client,
                timeout=2.0,
                retry=FAST,
            )
        assert err.value.code == "vendor_outcome_unknown"
        (session,) = app.state.book.sessions.values()
        assert session.status == "closed"


async def test_heygen_lost_start_counts_and_a_lost_task_is_not_spoken_twice(
    target: RoomTarget, emu_config
) -> None:
    emu_config.stall_next(1, 10.0, path="/v1/streaming.start")
    app = heygen_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        session = await get_provider("heygen").start(
            target,
            avatar_id="a",
            api_key="dev",
            base_url=url,
            client=client,
            timeout=2.0,
            retry=FAST,
        )
        try:
            (emulated,) = app.state.book.sessions.values()  # started once, and in use
            assert session.state == AvatarState.IDLE and emulated.status == "connected"
            emu_config.stall_next(1, 10.0, path="/v1/streaming.task")
            with pytest.raises(ProviderError) as err:
                await session.speak("Say this once.")
            assert err.value.code == "vendor_outcome_unknown"
            assert list(emulated.extra["tasks"].values()) == ["Say this once."]
        finally:
            await session.aclose()
        assert emulated.status == "closed"
