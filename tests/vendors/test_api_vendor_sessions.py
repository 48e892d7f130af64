"""Through Greenroom's own API: a template names a vendor provider, avatar id and voice; the
key and endpoint come from the environment (here: the emulator); the session shows the
composited avatar with the template's background, speaks, switches background, and stops
with nothing left running on either side."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from livekit import api as lkapi
from PIL import Image
from pydantic import SecretStr

from greenroom.api import create_app
from greenroom.config import Settings
from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.livekit_server import LiveKitServer

from .conftest import serve

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

KEY = "api-test-key-0123456789"
BLUE, RED = (0, 68, 255), (220, 30, 40)
EMULATORS = {"liveavatar": liveavatar_emu, "heygen": heygen_emu}


def _corner(img: np.ndarray) -> np.ndarray:
    return np.median(img[:48, :48].reshape(-1, 3), axis=0)


def _avatar_visible(img: np.ndarray, bg: tuple[int, int, int]) -> bool:
    h, w, _ = img.shape
    centre = img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(np.int16)
    return bool((np.abs(centre - np.array(bg)).max(axis=2) > 60).mean() > 0.2)


async def _picture(c: httpx.AsyncClient, sid: str, check, timeout: float = 60) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        r = await c.get(f"/v2/streaming/sessions/{sid}/snapshot.png")
        if r.status_code == 200:
            img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
            if check(img):
                return img
        assert time.monotonic() < deadline, f"picture not as expected in time ({r.status_code})"
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("provider", ["liveavatar", "heygen"])
async def test_template_names_a_vendor_avatar(
    provider: str, livekit: LiveKitServer, data_dir: Path, emu_config, monkeypatch
) -> None:
    emulator = EMULATORS[provider].create_app(emu_config, LocalBackend())
    async with serve(emulator) as url:
        env = provider.upper()
        monkeypatch.setenv(f"GREENROOM_{env}_BASE_URL", url)
        monkeypatch.setenv(f"GREENROOM_{env}_API_KEY", "dev")
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            api_key=SecretStr(KEY),
            livekit_url=livekit.url,
            livekit_api_key=livekit.api_key,
            livekit_api_secret=SecretStr(livekit.api_secret),
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://greenroom.test",
                headers={"X-Api-Key": KEY},
                timeout=90,
            ) as c,
        ):
            t = await c.post(
                "/v1/templates",
                json={
                    "name": f"{provider}-blue",
                    "provider": provider,
                    "avatar_id": "Anna",
                    "voice": "en-us",
                    "background": "#0044ff",
                },
            )
            assert t.status_code == 201, t.text
            r = await c.post(
                "/v2/streaming/sessions", json={"template_id": t.json()["id"], "text": "Hello!"}
            )
            assert r.status_code == 200, r.text
            started = r.json()
            sid = started["session_id"]
            (vendor_session,) = emulator.state.book.sessions.values()
            assert vendor_session.status == "connected" and vendor_session.avatar_id == "Anna"

            img = await _picture(
                c,
                sid,
                lambda im: np.abs(_corner(im) - BLUE).max() < 15 and _avatar_visible(im, BLUE),
            )
            r = await c.post(f"/v2/streaming/sessions/{sid}/speak", json={"text": "How are you?"})
            assert r.status_code == 200, r.text
            r = await c.put(
                f"/v2/streaming/sessions/{sid}/background",
                json={"background": "#dc1e28", "transition": 0},
            )
            assert r.status_code == 200, r.text
            img = await _picture(c, sid, lambda im: np.abs(_corner(im) - RED).max() < 15)
            assert _avatar_visible(img, RED)
            r = await c.delete(f"/v2/streaming/sessions/{sid}")
            assert r.status_code == 200 and r.json()["status"] == "stopped", r.text

        assert vendor_session.status == "closed" and vendor_session.avatar is None
        async with lkapi.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
            rooms = {
                room.name for room in (await lk.room.list_rooms(lkapi.ListRoomsRequest())).rooms
            }
        assert started["room"] not in rooms


async def test_vendor_errors_reach_the_api_caller(
    livekit: LiveKitServer, data_dir: Path, emu_config, monkeypatch
) -> None:
    emu_config.unknown_avatars.add("ghost")
    emu_config.sunset = True
    emulator = heygen_emu.create_app(emu_config, LocalBackend())
    la = liveavatar_emu.create_app(emu_config, LocalBackend())
    async with serve(emulator) as hg_url, serve(la) as la_url:
        monkeypatch.setenv("GREENROOM_HEYGEN_BASE_URL", hg_url)
        monkeypatch.setenv("GREENROOM_HEYGEN_API_KEY", "dev")
        monkeypatch.setenv("GREENROOM_LIVEAVATAR_BASE_URL", la_url)
        monkeypatch.setenv("GREENROOM_LIVEAVATAR_API_KEY", "dev")
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            api_key=SecretStr(KEY),
            livekit_url=livekit.url,
            livekit_api_key=livekit.api_key,
            livekit_api_secret=SecretStr(livekit.api_secret),
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://greenroom.test",
                headers={"X-Api-Key": KEY},
                timeout=90,
            ) as c,
        ):
            answers = {}
            for provider, avatar in [("liveavatar", "ghost"), ("heygen", "Anna")]:
                t = await c.post(
                    "/v1/templates",
                    json={"name": provider, "provider": provider, "avatar_id": avatar},
                )
                r = await c.post("/v2/streaming/sessions", json={"template_id": t.json()["id"]})
                answers[provider] = (r.status_code, r.json()["error"])
    status, error = answers["liveavatar"]
    assert (status, error["code"]) == (404, "avatar_not_found")
    assert "Avatar ghost not found" in error["message"]
    status, error = answers["heygen"]
    assert (status, error["code"]) == (410, "vendor_sunset")
    assert "use the 'liveavatar' provider" in error["message"]
