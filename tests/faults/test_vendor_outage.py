"""The avatar vendor (LiveAvatar, HeyGen: the emulators) answers 429, 500, or nothing at all
for a bounded period while a session runs and another one is being started.

429 and 500 are the emulator's configured failures (``EmulatorConfig.fail_next``), cleared
when the period ends; "timeout" is a vendor that takes requests and never answers (a wrapper
holds each request received during the period until the client gives up). The period lasts
``GREENROOM_FAULT_SECONDS`` (default 3 s); for 429/500 it also lasts until the calls made
during it have been answered, so what they see does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from greenroom.emulators import heygen as heygen_emu
from greenroom.emulators import liveavatar as liveavatar_emu
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig, LiveKitAccess
from greenroom.emulators.testing import serve
from greenroom.livekit_server import LiveKitServer

from .conftest import Service, fault_seconds, open_service, participants, record, wait_until

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

EMULATORS = {"liveavatar": liveavatar_emu, "heygen": heygen_emu}
#: what a caller sees for each failure once retries are spent: (HTTP status, error code)
REFUSED = {"429": (429, "vendor_rate_limited"), "500": (502, "provider_error")}


class Silence:
    """ASGI wrapper: while ``on``, HTTP requests are taken and never answered."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.on = False
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.on:
            self.held += 1
            while (await receive())["type"] != "http.disconnect":
                pass  # the body, then nothing until the client hangs up
            return
        await self.app(scope, receive, send)


@pytest.fixture(params=["liveavatar", "heygen"])
def vendor(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def emulated(
    vendor: str, livekit: LiveKitServer
) -> AsyncIterator[tuple[EmulatorConfig, Any, Silence, str]]:
    cfg = EmulatorConfig(
        livekit=LiveKitAccess(livekit.url, livekit.api_key, livekit.api_secret),
        api_key="dev",
        idle_timeout=3600,  # a slow run must not meet the vendor's own idle timeout (120 s)
    )
    app = EMULATORS[vendor].create_app(cfg, LocalBackend())
    silence = Silence(app)
    async with serve(silence) as url:
        yield cfg, app, silence, url


@pytest.fixture
async def vendor_service(
    vendor: str, emulated: tuple[EmulatorConfig, Any, Silence, str], data_dir: Path, livekit
) -> AsyncIterator[Service]:
    url = emulated[3]
    extra = {f"{vendor}_api_key": SecretStr("dev"), f"{vendor}_base_url": url}
    async for s in open_service(data_dir, livekit, **extra):
        await s.template(provider=vendor, avatar_id="Anna", voice="en-us")
        # the vendor's picture comes through a relay (HeyGen) or the emulator's own avatar:
        # on a loaded machine the first frames can take minutes
        s.frame_timeout = 240.0
        yield s


def live_vendor_sessions(app: Any) -> list[Any]:
    return [s for s in app.state.book.sessions.values() if s.live]


@pytest.mark.parametrize("failure", ["429", "500", "timeout"])
async def test_vendor_outage(
    vendor: str,
    failure: str,
    vendor_service: Service,
    emulated: tuple[EmulatorConfig, Any, Silence, str],
) -> None:
    svc, (cfg, emu, silence, _) = vendor_service, emulated
    period = fault_seconds(3.0)
    a = await svc.start()
    assert len(live_vendor_sessions(emu)) == 1

    t0 = time.monotonic()
    if failure == "timeout":
        silence.on = True
    else:
        cfg.fail_next(10**6, int(failure), message=f"injected {failure}")

    async def start_b() -> tuple[Any, float]:
        r = await svc.client.post(
            "/v2/streaming/sessions", json={"template_id": svc.template_id}, timeout=300
        )
        return r, time.monotonic()

    async def keep_alive_a() -> Any:
        return await svc.client.post(
            f"/v2/streaming/sessions/{a['session_id']}/keep_alive", timeout=300
        )

    probes = asyncio.gather(start_b(), keep_alive_a())
    if failure == "timeout":
        await asyncio.sleep(period)
        silence.on = False
        t_end = time.monotonic()
        (b, b_done), ka = await probes
    else:
        (b, b_done), ka = await probes
        await asyncio.sleep(max(0.0, t0 + period - time.monotonic()))
        cfg.faults.clear()
        t_end = time.monotonic()
    print(
        f"\n{vendor} {failure} for {t_end - t0:.1f} s: start -> {b.status_code} "
        f"{b.text[:160]}; keep_alive -> {ka.status_code} {ka.text[:160]}"
    )

    # the running session is not killed by a passing vendor outage
    assert (await svc.session(a["session_id"]))["status"] == "started"
    await svc.first_frame(a["session_id"], svc.frame_timeout)

    if failure == "timeout":
        # the call held by the silent vendor times out (30 s per request), the retry after
        # the outage succeeds: a slow start, and no second vendor session for it
        assert silence.held >= 1
        assert b.status_code == 200, b.text
        assert ka.status_code == 200, ka.text
        record(f"{vendor} silent {period:.0f} s", "start held, then ok", b_done - t0)
        bid = b.json()["session_id"]
        await svc.first_frame(bid, svc.frame_timeout)
        assert len(live_vendor_sessions(emu)) == 2
    else:
        status, code = REFUSED[failure]
        assert b.status_code == status, b.text
        err = b.json()["error"]
        assert err["code"] == code, err
        assert f"injected {failure}" in err["message"], err
        record(f"{vendor} {failure} for {period:.0f} s", "start refused after", b_done - t0)
        assert ka.status_code in (200, status), ka.text
        if ka.status_code != 200:
            assert ka.json()["error"]["code"] == code, ka.text
        # nothing left of the refused start: no vendor session, no room, a failed row
        assert len(live_vendor_sessions(emu)) == 1
        r = await svc.client.get("/v2/streaming/sessions", params={"status": "failed"})
        (failed,) = r.json()["sessions"]
        assert failed["stop_reason"] == "start_failed" and failed["error"], failed
        assert not await participants(svc.livekit, failed["room"])

        # recovery: the first start after the outage works
        t1 = time.monotonic()
        c = await svc.start()
        record(
            f"{vendor} {failure} for {period:.0f} s",
            "next start ok after outage",
            time.monotonic() - t_end,
        )
        del t1
        bid = c["session_id"]
        assert len(live_vendor_sessions(emu)) == 2

    r = await svc.client.post(f"/v2/streaming/sessions/{a['session_id']}/keep_alive")
    assert r.status_code == 200, r.text
    for sid in (a["session_id"], bid):
        r = await svc.client.delete(f"/v2/streaming/sessions/{sid}")
        assert r.status_code == 200, r.text

    async def all_closed() -> bool:
        return not live_vendor_sessions(emu)

    await wait_until(all_closed, "every vendor session closed", timeout=30)
    assert await svc.open_sessions() == []
    for s in svc.started:

        async def empty(room: str = s["room"]) -> bool:
            return not await participants(svc.livekit, room)

        await wait_until(empty, f"room {s['room']} to be empty", timeout=30)
