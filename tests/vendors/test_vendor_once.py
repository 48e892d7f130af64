"""Calls that start a paid vendor session are never sent twice blindly, and the vendor's session
id reaches the caller before anything else can fail (HTTP surfaces only, no LiveKit)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from greenroom.avatars import (
    RoomTarget,
    VendorProvider,
    VendorSessionRef,
    get_provider,
    stop_vendor_session,
)
from greenroom.avatars._http import RetryPolicy
from greenroom.config import Settings
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve
from greenroom.errors import ProviderError

pytestmark = pytest.mark.unit

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, budget=1.0)
LK = LiveKitAccess("ws://127.0.0.1:1", "devkey", "secret")
TARGET = RoomTarget("ws://127.0.0.1:1", "devkey", "secret", "room-once")
EMULATORS = {"heygen": heygen_emu, "liveavatar": liveavatar_emu}
CREATE_PATHS = {"heygen": "/v1/streaming.new", "liveavatar": "/v1/sessions/token"}


@pytest.fixture
def cfg() -> EmulatorConfig:
    return EmulatorConfig(livekit=LK, api_key="dev")


async def _start(vendor: str, url: str, client: httpx.AsyncClient | None, **options: Any) -> Any:
    return await get_provider(vendor).start(
        TARGET, avatar_id="a", api_key="dev", base_url=url, client=client, **options
    )


def _ids(app) -> list[str]:
    return list(app.state.book.sessions)


@pytest.mark.parametrize("vendor", ["heygen", "liveavatar"])
async def test_create_answered_too_late_is_not_sent_again(cfg, vendor) -> None:
    """The vendor made the session but its answer came after our timeout: one session, and
    an error that says so, instead of a second paid session."""
    cfg.stall_next(1, 4.0, path=CREATE_PATHS[vendor])
    app = EMULATORS[vendor].create_app(cfg)
    async with serve(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(ProviderError) as err:
            await _start(vendor, url, client, timeout=1.0, retry=FAST)
    assert err.value.code == "vendor_outcome_unknown" and not err.value.retryable
    (made,) = _ids(app)
    assert made in err.value.message  # the message names the session that may be ours


@pytest.mark.parametrize("vendor", ["heygen", "liveavatar"])
async def test_create_that_did_not_happen_is_retried_after_a_lookup(cfg, vendor) -> None:
    """A gateway timeout (504) says nothing about the outcome; the account's list shows no new
    session, so the create is sent again and succeeds, once."""
    cfg.fail_next(1, 504, message="gateway timeout", path=CREATE_PATHS[vendor])
    refs: list[VendorSessionRef] = []
    app = EMULATORS[vendor].create_app(cfg)  # no avatar backend: begin fails after create
    async with serve(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(ProviderError, match="no avatar backend"):
            await _start(vendor, url, client, retry=FAST, on_vendor_session=refs.append)
    assert not cfg.faults  # the 504 was answered, then the retry went through
    (made,) = _ids(app)
    assert [r.session_id for r in refs] == [made]
    assert app.state.book.sessions[made].status == "closed"  # the failed start stopped it


async def test_a_session_made_just_before_does_not_look_like_the_lost_one(cfg) -> None:
    """The vendor lists ``created_at`` in whole seconds, so a session this process made a moment
    earlier (same avatar) is as new as the lost create's would be; it was handed to us, so it
    is not mistaken for it: the create is sent again and succeeds."""
    from greenroom.avatars.liveavatar.api import LiveAvatarAPI
    from greenroom.avatars.liveavatar.models import AvatarPersona, TokenRequest

    request = TokenRequest(mode="FULL", avatar_id="a", avatar_persona=AvatarPersona())
    app = liveavatar_emu.create_app(cfg)
    async with serve(app) as url, httpx.AsyncClient() as client:
        first = await LiveAvatarAPI(url, "dev", client, retry=FAST).create_token(request)
        cfg.fail_next(1, 504, message="gateway timeout", path=CREATE_PATHS["liveavatar"])
        second = await LiveAvatarAPI(url, "dev", client, retry=FAST).create_token(request)
    assert not cfg.faults
    assert second.session_id != first.session_id
    assert sorted(_ids(app)) == sorted([first.session_id, second.session_id])


@pytest.mark.parametrize("shared_client", [True, False])
@pytest.mark.parametrize("vendor", ["heygen", "liveavatar"])
async def test_a_failing_id_callback_stops_the_vendor_session(cfg, vendor, shared_client) -> None:
    """Also when the provider made (and owns) its HTTP client: it is closed after the stop."""
    app = EMULATORS[vendor].create_app(cfg)

    async def record(ref: VendorSessionRef) -> None:
        assert app.state.book.sessions[ref.session_id].status == "new"  # before it begins
        raise RuntimeError("database is down")

    async with serve(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(RuntimeError, match="database is down"):
            await _start(vendor, url, client if shared_client else None, on_vendor_session=record)
        assert not client.is_closed  # a shared client stays the caller's
    (session,) = app.state.book.sessions.values()
    assert session.status == "closed"


@pytest.mark.parametrize("vendor", ["heygen", "liveavatar"])
async def test_a_recorded_session_can_be_stopped_by_another_process(cfg, vendor) -> None:
    """What a restarted service does with the ids it stored: stop each, once."""
    refs: list[VendorSessionRef] = []
    app = EMULATORS[vendor].create_app(cfg)  # no avatar backend: the start fails after create
    async with serve(app) as url, httpx.AsyncClient() as client:
        cfg.fail_next(1, 400, message="stop refused", path="stop")  # ... and so does its stop
        with pytest.raises(ProviderError) as err:
            await _start(vendor, url, client, on_vendor_session=refs.append)
        assert err.value.code == "vendor_session_leaked"
        (ref,) = refs
        assert app.state.book.sessions[ref.session_id].status == "new"  # still running
        key = {f"{vendor}_api_key": SecretStr("dev"), f"{vendor}_base_url": url}
        settings = Settings(**key)  # type: ignore[arg-type]
        assert await stop_vendor_session(ref, settings=settings) is True
        assert app.state.book.sessions[ref.session_id].status == "closed"
        if vendor == "heygen":  # HeyGen says "wrong state" for a stopped session
            assert await stop_vendor_session(ref, settings=settings) is False
    if vendor == "liveavatar":
        assert ref.stop_token and ref.stop_token not in repr(ref)


def test_the_vendor_providers_are_the_ones_with_sessions_to_stop() -> None:
    """A caller passes ``on_vendor_session`` where ``isinstance(provider, VendorProvider)``."""
    kinds = {n: isinstance(get_provider(n), VendorProvider) for n in ("local", "file", "attach")}
    assert kinds == {"local": False, "file": False, "attach": False}
    assert isinstance(get_provider("heygen"), VendorProvider)
    assert isinstance(get_provider("liveavatar"), VendorProvider)
