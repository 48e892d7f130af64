"""Vendor failures injected through the emulators reach the caller as the right error, and
no vendor session is left running when a start fails on either side."""

from __future__ import annotations

import asyncio
import time

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


def _statuses(app) -> list[str]:
    return [s.status for s in app.state.book.sessions.values()]


async def test_unknown_avatar_starts_nothing(target: RoomTarget, emu_config) -> None:
    emu_config.unknown_avatars.add("ghost")
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        with pytest.raises(ProviderError) as err:
            await get_provider("liveavatar").start(
                target, avatar_id="ghost", api_key="dev", base_url="http://la", client=client
            )
    assert err.value.code == "avatar_not_found" and err.value.status == 404
    assert "ghost" in err.value.message
    assert _statuses(app) == []


async def test_concurrency_limit_and_500_then_success(target: RoomTarget, emu_config) -> None:
    emu_config.max_concurrent = 1
    emu_config.fail_next(2, 500, path="/v1/sessions/start")  # first start: 500, 500, then ok
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    provider = get_provider("liveavatar")
    async with serve(app) as url, httpx.AsyncClient() as client:
        kw = dict(api_key="dev", base_url=url, client=client, retry=FAST)
        first = await provider.start(target, avatar_id="a", identity="first", **kw)
        try:
            assert not emu_config.faults  # both injected 500s were consumed by retries
            with pytest.raises(ProviderError) as err:
                await provider.start(target, avatar_id="a", identity="second", **kw)
            assert err.value.code == "vendor_concurrency_limit" and not err.value.retryable
            assert "Concurrent limit reached" in err.value.message
            # the refused session's token was not left open on the vendor's side
            assert sorted(_statuses(app)) == ["closed", "connected"]
        finally:
            await first.aclose()
        assert _statuses(app) == ["closed", "closed"]


async def test_idle_timeout_ends_the_session(target: RoomTarget, emu_config) -> None:
    emu_config.idle_timeout = 1.0
    app = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        session = await get_provider("liveavatar").start(
            target, avatar_id="a", api_key="dev", base_url=url, client=client
        )
        deadline = time.monotonic() + 15
        while session.state != AvatarState.STOPPED and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert session.state == AvatarState.STOPPED
        assert session.stop_reason == "IDLE_TIMEOUT"
        with pytest.raises(ProviderError, match="has ended"):
            await session.speak("too late")
        await session.aclose()  # still fine to call


@pytest.mark.parametrize(
    ("emulator", "options", "reason", "avatar_leaves_first"),
    [
        (heygen_emu, {"provider": "heygen"}, "left the vendor's room", False),
        (liveavatar_emu, {"provider": "liveavatar", "mode": "FULL"}, "IDLE_TIMEOUT", False),
        (liveavatar_emu, {"provider": "liveavatar", "mode": "FULL"}, "IDLE_TIMEOUT", True),
    ],
)
async def test_relayed_session_ended_by_the_vendor_stops(
    target: RoomTarget, emu_config, emulator, options, reason, avatar_leaves_first
) -> None:
    """The vendor's own reason wins, also when its avatar leaves before the event saying
    why arrives (they travel by different paths; the leave came first on a loaded machine)."""
    app = emulator.create_app(emu_config, LocalBackend())
    options = dict(options)
    async with serve(app) as url, httpx.AsyncClient() as client:
        session = await get_provider(options.pop("provider")).start(
            target, avatar_id="a", api_key="dev", base_url=url, client=client, **options
        )
        (emulated,) = app.state.book.sessions.values()
        if avatar_leaves_first:
            source = session.relay.src  # the relay's connection to the vendor's room
            gone = emulated.avatar.identity
            await emulated.avatar.aclose()
            deadline = time.monotonic() + 30
            while gone in source.remote_participants and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the leave reaches the relay first
            assert gone not in source.remote_participants
        await app.state.book.close(emulated, "IDLE_TIMEOUT")  # the vendor ends it
        deadline = time.monotonic() + 30
        while session.state != AvatarState.STOPPED and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert session.state == AvatarState.STOPPED
        assert reason in session.stop_reason
        await session.aclose()


async def test_failed_start_stops_the_vendor_session(target: RoomTarget, emu_config) -> None:
    app = heygen_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(ProviderError) as err:
            # the relay cannot see video this fast: our side fails after HeyGen started
            await get_provider("heygen").start(
                target,
                avatar_id="a",
                api_key="dev",
                base_url=url,
                client=client,
                ready_timeout=0.001,
            )
        assert "no video" in err.value.message
        (emulated,) = app.state.book.sessions.values()
        assert emulated.status == "closed" and emulated.stop_reason == "stopped"


async def test_failed_start_and_failed_stop_says_so(target: RoomTarget, emu_config) -> None:
    emu_config.fail_next(1, 400, message="stop refused", path="/v1/streaming.stop")
    app = heygen_emu.create_app(emu_config, LocalBackend())
    async with serve(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(ProviderError) as err:
            await get_provider("heygen").start(
                target,
                avatar_id="a",
                api_key="dev",
                base_url=url,
                client=client,
                ready_timeout=0.001,
            )
    assert err.value.code == "vendor_session_leaked"
    assert "stop refused" in err.value.message and "idle timeout" in err.value.message


async def test_heygen_sunset_points_to_liveavatar(target: RoomTarget, emu_config) -> None:
    emu_config.sunset = True
    app = heygen_emu.create_app(emu_config, LocalBackend())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        with pytest.raises(ProviderError) as err:
            await get_provider("heygen").start(
                target, avatar_id="a", api_key="dev", base_url="http://hg", client=client
            )
    assert err.value.code == "vendor_sunset" and err.value.status == 410
    assert "use the 'liveavatar' provider" in err.value.message


@pytest.mark.parametrize("vendor", ["liveavatar", "heygen"])
async def test_missing_key_is_a_config_error(target: RoomTarget, monkeypatch, vendor) -> None:
    from greenroom.errors import ConfigError

    env = f"GREENROOM_{vendor.upper()}"
    monkeypatch.delenv(f"{env}_API_KEY", raising=False)
    with pytest.raises(ConfigError) as err:
        await get_provider(vendor).start(target, avatar_id="a")
    assert f"set {env}_API_KEY" in err.value.message
    assert f"greenroom emulate {vendor}" in err.value.message
