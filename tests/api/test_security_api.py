"""What someone without the API key learns from the API: /healthz says ok and the version,
/metrics needs a credential, the viewer routes sit inside the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from greenroom import __version__
from greenroom.api import create_app

from .support import API_KEY, make_settings

pytestmark = pytest.mark.unit

METRICS_TOKEN = "scrape-token-0123456789"


async def _anon(data_dir: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(data_dir, **settings), warm_up=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://greenroom.test") as c:
            yield c


@pytest.fixture
async def anon(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _anon(data_dir, metrics_token=SecretStr(METRICS_TOKEN)):
        yield c


async def test_healthz_says_only_ok_and_version(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}


async def test_metrics_need_the_api_key_or_the_metrics_token(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/metrics")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "greenroom_" not in r.text
    wrong = await anon.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "invalid credential for /metrics"
    for headers in (
        {"Authorization": f"Bearer {METRICS_TOKEN}"},
        {"X-Api-Key": METRICS_TOKEN},
        {"Authorization": f"Bearer {API_KEY}"},
    ):
        ok = await anon.get("/metrics", headers=headers)
        assert ok.status_code == 200, headers
        assert "greenroom_sessions_active 0.0" in ok.text
    # the metrics token opens /metrics only
    assert (
        await anon.get("/v1/templates", headers={"X-Api-Key": METRICS_TOKEN})
    ).status_code == 401


async def test_metrics_public_only_when_configured(data_dir: Path) -> None:
    async for c in _anon(data_dir, metrics_public=True):
        r = await c.get("/metrics")
        assert r.status_code == 200 and "greenroom_sessions_active" in r.text
        assert (await c.get("/v1/templates")).status_code == 401


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_viewer_routes_are_inside_the_body_limit(
    anon: httpx.AsyncClient, declared: bool
) -> None:
    big = b'{"text": "' + b"a" * (3 * 1024 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    content: bytes | AsyncIterator[bytes] = big if declared else chunks()
    r = await anon.post(
        "/viewer/ses_x/api/speak",
        content=content,
        headers={"Content-Type": "application/json", "Authorization": "Bearer whatever"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
