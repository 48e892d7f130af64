"""The vendor HTTP clients against the emulators' HTTP surfaces (no LiveKit, no avatar):
auth, validation, envelopes, and every injected vendor error mapped to our error shape."""

from __future__ import annotations

import httpx
import pytest

from greenroom.avatars._http import RetryPolicy, stop_after_failure, vendor_error
from greenroom.avatars.heygen.api import HeyGenAPI
from greenroom.avatars.heygen.models import NewSessionRequest, TaskRequest
from greenroom.avatars.liveavatar.api import LiveAvatarAPI
from greenroom.avatars.liveavatar.models import LiveKitConfig, SessionToken, TokenRequest
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.errors import ProviderError

pytestmark = pytest.mark.unit

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, budget=1.0)
LK = LiveKitAccess("ws://127.0.0.1:1", "devkey", "secret")


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


def lite_request(avatar_id: str = "avatar-1") -> TokenRequest:
    return TokenRequest(
        mode="LITE",
        avatar_id=avatar_id,
        livekit_config=LiveKitConfig(
            livekit_url="ws://127.0.0.1:7880", livekit_room="r", livekit_client_token="t"
        ),
    )


@pytest.fixture
def la_cfg() -> EmulatorConfig:
    return EmulatorConfig(livekit=LK, api_key="la-key")


@pytest.fixture
async def la(la_cfg):
    async with _client(liveavatar_emu.create_app(la_cfg)) as client:
        yield LiveAvatarAPI("http://liveavatar.test", "la-key", client, retry=FAST), client


@pytest.fixture
def hg_cfg() -> EmulatorConfig:
    return EmulatorConfig(livekit=LK, api_key="hg-key")


@pytest.fixture
async def hg(hg_cfg):
    async with _client(heygen_emu.create_app(hg_cfg)) as client:
        yield HeyGenAPI("http://heygen.test", "hg-key", client, retry=FAST), client


# --- LiveAvatar -------------------------------------------------------------------------


async def test_liveavatar_token_envelope_and_list(la) -> None:
    api, _ = la
    token = await api.create_token(lite_request())
    assert token.session_id and token.session_token
    sessions = await api.list_sessions()
    assert [s["session_id"] for s in sessions] == [token.session_id]
    assert sessions[0]["status"] == "new" and sessions[0]["mode"] == "LITE"


async def test_liveavatar_wrong_key_is_auth_error(la) -> None:
    _, client = la
    api = LiveAvatarAPI("http://liveavatar.test", "wrong", client, retry=FAST)
    with pytest.raises(ProviderError) as err:
        await api.create_token(lite_request())
    assert err.value.code == "vendor_auth_failed" and err.value.http_status == 401
    assert "GREENROOM_LIVEAVATAR_API_KEY" in err.value.message


async def test_liveavatar_rejects_lite_without_livekit_config(la) -> None:
    _, client = la
    r = await client.post(
        "http://liveavatar.test/v1/sessions/token",
        headers={"X-API-KEY": "la-key"},
        json={"mode": "LITE", "avatar_id": "a"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "livekit_config"]
    r = await client.post(
        "http://liveavatar.test/v1/sessions/token",
        headers={"X-API-KEY": "la-key"},
        json={"mode": "SOMETHING", "avatar_id": "a"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "mode"]


async def test_liveavatar_session_calls_need_the_session_token(la) -> None:
    api, _ = la
    token = await api.create_token(lite_request())
    forged = SessionToken(session_id=token.session_id, session_token="nope")
    with pytest.raises(ProviderError) as err:
        await api.keep_alive(forged)
    assert err.value.http_status == 401
    await api.keep_alive(token)  # the right one works
    await api.stop(token)
    assert (await api.list_sessions())[0]["status"] == "closed"


async def test_liveavatar_unknown_avatar(la, la_cfg) -> None:
    api, _ = la
    la_cfg.unknown_avatars.add("ghost")
    with pytest.raises(ProviderError) as err:
        await api.create_token(lite_request("ghost"))
    assert err.value.code == "avatar_not_found" and err.value.status == 404
    assert "ghost" in err.value.message


async def test_liveavatar_500_then_success_is_retried(la, la_cfg) -> None:
    api, _ = la
    la_cfg.fail_next(2, 500, path="/v1/sessions/token")
    token = await api.create_token(lite_request())
    assert token.session_id
    assert not la_cfg.faults


async def test_liveavatar_persistent_500_gives_up_with_vendor_message(la, la_cfg) -> None:
    api, _ = la
    la_cfg.fail_next(5, 503, message="upstream overloaded")
    with pytest.raises(ProviderError) as err:
        await api.create_token(lite_request())
    assert err.value.retryable and err.value.http_status == 503
    assert "upstream overloaded" in err.value.message
    assert la_cfg.faults[0].remaining == 2  # three attempts were made, no more


async def test_liveavatar_concurrency_limit_is_not_retried(la, la_cfg) -> None:
    api, _ = la
    la_cfg.max_concurrent = 0
    token = await api.create_token(lite_request())
    with pytest.raises(ProviderError) as err:
        await api.start(token)
    assert err.value.code == "vendor_concurrency_limit" and not err.value.retryable
    assert "Concurrent limit reached" in err.value.message


# --- HeyGen -------------------------------------------------------------------------------


async def test_heygen_new_session_returns_livekit_room(hg) -> None:
    api, _ = hg
    new = await api.new_session(NewSessionRequest(avatar_id="Anna", version="v2"))
    assert new.url == LK.url and new.access_token and new.session_id
    assert new.session_duration_limit == 600
    listed = await api.list_sessions()
    assert listed[0]["session_id"] == new.session_id and listed[0]["status"] == "new"


async def test_heygen_sdk_token_auth(hg) -> None:
    _, client = hg
    r = await client.post(
        "http://heygen.test/v1/streaming.create_token", headers={"X-Api-Key": "hg-key"}
    )
    token = r.json()["data"]["token"]
    r = await client.post(
        "http://heygen.test/v1/streaming.new",
        headers={"Authorization": f"Bearer {token}"},
        json={"avatar_name": "Anna", "version": "v2", "source": "sdk"},
    )
    assert r.status_code == 200 and r.json()["data"]["session_id"]
    r = await client.post(
        "http://heygen.test/v1/streaming.new",
        headers={"Authorization": "Bearer forged"},
        json={"avatar_name": "Anna", "version": "v2"},
    )
    assert r.status_code == 401 and set(r.json()) == {"code", "message"}


@pytest.mark.parametrize(
    ("setup", "code", "status", "vendor_code"),
    [
        (lambda c: c.unknown_avatars.add("Anna"), "avatar_not_found", 404, 10013),
        (lambda c: c.deprecated_avatars.add("Anna"), "avatar_deprecated", 422, 10003),
        (lambda c: setattr(c, "max_concurrent", 0), "vendor_concurrency_limit", 429, None),
    ],
)
async def test_heygen_documented_errors(hg, hg_cfg, setup, code, status, vendor_code) -> None:
    api, _ = hg
    setup(hg_cfg)
    with pytest.raises(ProviderError) as err:
        await api.new_session(NewSessionRequest(avatar_id="Anna", version="v2"))
    assert (err.value.code, err.value.status) == (code, status)
    assert err.value.vendor == "heygen" and not err.value.retryable
    if vendor_code:
        assert f"vendor code {vendor_code}" in err.value.message


async def test_heygen_task_before_start_is_wrong_state(hg) -> None:
    api, _ = hg
    new = await api.new_session(NewSessionRequest(avatar_id="Anna", version="v2"))
    with pytest.raises(ProviderError) as err:
        await api.task(TaskRequest(session_id=new.session_id, text="hi"))
    assert err.value.code == "vendor_session_state" and err.value.status == 409
    assert "not in correct state" in err.value.message and "400006" in err.value.message


async def test_heygen_sunset_410_says_use_liveavatar(hg, hg_cfg) -> None:
    api, _ = hg
    hg_cfg.sunset = True
    with pytest.raises(ProviderError) as err:
        await api.new_session(NewSessionRequest(avatar_id="Anna", version="v2"))
    assert err.value.code == "vendor_sunset" and err.value.http_status == 410
    assert "liveavatar" in err.value.message and not err.value.retryable


async def test_heygen_429_honours_retry_after_then_succeeds(hg, hg_cfg) -> None:
    api, _ = hg
    hg_cfg.fail_next(1, 429, message="Too many requests")
    new = await api.new_session(NewSessionRequest(avatar_id="Anna", version="v2"))
    assert new.session_id


# --- the shared edge ------------------------------------------------------------------------


async def test_network_error_is_a_retryable_provider_error() -> None:
    async with httpx.AsyncClient() as client:
        api = HeyGenAPI("http://127.0.0.1:9", "k", client, retry=FAST)
        with pytest.raises(ProviderError) as err:
            await api.keep_alive("s")
    assert err.value.code == "vendor_unreachable" and err.value.retryable


def test_vendor_error_keeps_vendor_message_and_hides_no_code() -> None:
    err = vendor_error("heygen", 400, {"code": 400112, "message": "voice not supported"})
    assert err.message == (
        "heygen: voice not supported (the avatar or voice is not supported by this API) "
        "[vendor code 400112]"
    )
    assert err.code == "avatar_unsupported"


async def test_stop_after_failure_reports_a_failed_stop() -> None:
    cause = ProviderError("liveavatar", "relay never saw video")

    async def stop_ok() -> None:
        return None

    async def stop_fails() -> None:
        raise ProviderError("liveavatar", "HTTP 500")

    with pytest.raises(ProviderError) as err:
        await stop_after_failure("liveavatar", "s-1", stop_ok, cause)
    assert err.value is cause
    with pytest.raises(ProviderError) as err:
        await stop_after_failure("liveavatar", "s-1", stop_fails, cause)
    assert err.value.code == "vendor_session_leaked"
    assert "relay never saw video" in err.value.message and "s-1" in err.value.message
