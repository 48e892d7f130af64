"""Which browser pages may call an emulator: pages from this machine by default, exactly the
configured origins otherwise, and never any origin with credentials."""

from __future__ import annotations

import httpx
import pytest

from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.config import EmulatorConfig

pytestmark = pytest.mark.unit

EMULATORS = [heygen_emu, liveavatar_emu]
PATH = {heygen_emu: "/v1/streaming.new", liveavatar_emu: "/v1/sessions/token"}


async def _preflight(emulator, config: EmulatorConfig, origin: str) -> httpx.Headers:
    app = emulator.create_app(config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        r = await client.options(
            f"http://emulator{PATH[emulator]}",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key",
            },
        )
    return r.headers


@pytest.mark.parametrize("emulator", EMULATORS)
async def test_default_allows_local_pages_only(emulator) -> None:
    local = await _preflight(emulator, EmulatorConfig(), "http://127.0.0.1:5173")
    assert local.get("access-control-allow-origin") == "http://127.0.0.1:5173"
    assert local.get("access-control-allow-credentials") == "true"
    for foreign in ("https://evil.example", "http://127.0.0.1.evil.example"):
        headers = await _preflight(emulator, EmulatorConfig(), foreign)
        assert "access-control-allow-origin" not in headers


@pytest.mark.parametrize("emulator", EMULATORS)
async def test_configured_origins_only(emulator) -> None:
    config = EmulatorConfig(cors_origins=("https://app.example",))
    ok = await _preflight(emulator, config, "https://app.example")
    assert ok.get("access-control-allow-origin") == "https://app.example"
    assert ok.get("access-control-allow-credentials") == "true"
    refused = await _preflight(emulator, config, "http://localhost:3000")
    assert "access-control-allow-origin" not in refused


@pytest.mark.parametrize("emulator", EMULATORS)
async def test_any_origin_never_with_credentials(emulator) -> None:
    headers = await _preflight(emulator, EmulatorConfig(cors_origins=("*",)), "https://x.example")
    assert headers.get("access-control-allow-origin") == "*"
    assert "access-control-allow-credentials" not in headers


def test_origins_from_the_environment() -> None:
    env = {"GREENROOM_EMULATOR_CORS_ORIGINS": "https://b.example, https://a.example"}
    assert EmulatorConfig.from_env(env=env).cors_origins == (
        "https://a.example",
        "https://b.example",
    )
    assert EmulatorConfig.from_env(env={}).cors_origins is None
