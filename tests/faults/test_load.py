"""Too much at once: 200 concurrent background switches on one session, and 50 sessions
requested at once beyond the per-process limit (``GREENROOM_MAX_SESSIONS``)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from greenroom.livekit_server import LiveKitServer

from .conftest import Service, decode_png, open_service, participants, record, wait_until

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

PUTS = 200
REQUESTS = 50
LIMIT = 2


def palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` colours at least 51 apart on some channel (a 6x6x6 grid)."""
    steps = [0, 51, 102, 153, 204, 255]
    grid = [(r, g, b) for r in steps for g in steps for b in steps]
    return grid[:n]


def hexed(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def corner(img: np.ndarray) -> np.ndarray:
    h, w, _ = img.shape
    return np.median(img[: h // 10, : w // 10].reshape(-1, 3), axis=0)


async def test_200_concurrent_background_switches(service: Service) -> None:
    svc = service
    a = await svc.start()
    sid = a["session_id"]
    colours = palette(PUTS)

    async def put(rgb: tuple[int, int, int]) -> tuple[Any, float]:
        t = time.monotonic()
        r = await svc.client.put(
            f"/v2/streaming/sessions/{sid}/background",
            json={"background": hexed(rgb), "transition": 0},
            timeout=300,
        )
        return r, time.monotonic() - t

    t0 = time.monotonic()
    results = await asyncio.gather(*(put(c) for c in colours))
    total = time.monotonic() - t0
    codes: dict[int, int] = {}
    for r, _ in results:
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
    took = sorted(dt for _, dt in results)
    print(f"\n{PUTS} concurrent PUTs: {codes}, p50 {statistics.median(took):.2f} s")
    record(f"{PUTS} concurrent PUT background", "all answered", total)
    record(f"{PUTS} concurrent PUT background", "slowest answer", took[-1])

    # every call answered: switched, or refused with a clear 429 and Retry-After
    assert set(codes) <= {200, 429}, [r.text for r, _ in results if r.status_code not in (200, 429)]
    for r, _ in results:
        if r.status_code == 429:
            assert r.headers.get("retry-after"), r.headers
            assert r.json()["error"]["code"], r.text
    assert codes.get(200, 0) >= 1
    applied = {hexed(c) for (r, _), c in zip(results, colours, strict=True) if r.status_code == 200}

    # one truth afterwards: the record, the compositor and the picture agree on one of the
    # backgrounds that were accepted
    t1 = time.monotonic()
    s = await svc.session(sid)
    assert s["status"] == "started", s
    assert s["background"] in applied, s["background"]
    want = np.array([int(s["background"][i : i + 2], 16) for i in (1, 3, 5)])

    async def on_screen() -> bool:
        img = decode_png(
            (await svc.client.get(f"/v2/streaming/sessions/{sid}/snapshot.png")).content
        )
        return bool(np.abs(corner(img) - want).max() <= 20)

    await wait_until(on_screen, f"the picture to show {s['background']}", timeout=60)
    record(f"{PUTS} concurrent PUT background", "picture settled after", time.monotonic() - t1)
    assert (await svc.session(sid))["background"] == s["background"]
    assert await participants(svc.livekit, a["room"]) == {
        a["avatar_identity"],
        a["compositor_identity"],
    }


@pytest.fixture
async def limited(data_dir: Path, livekit: LiveKitServer) -> AsyncIterator[Service]:
    async for s in open_service(data_dir, livekit, max_sessions=LIMIT):
        yield s


async def test_50_sessions_at_once_beyond_the_limit(limited: Service) -> None:
    svc = limited
    await svc.template()

    async def start() -> Any:
        return await svc.client.post(
            "/v2/streaming/sessions", json={"template_id": svc.template_id}, timeout=300
        )

    t0 = time.monotonic()
    answers = await asyncio.gather(*(start() for _ in range(REQUESTS)))
    record(f"{REQUESTS} starts at once, limit {LIMIT}", "all answered", time.monotonic() - t0)
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(ok) == LIMIT, [r.text for r in answers if r.status_code != 429][:3]
    assert len(refused) == REQUESTS - LIMIT, [r.text for r in answers if r.status_code != 200]
    for r in refused:
        err = r.json()["error"]
        assert err["code"] == "too_many_sessions", err
        assert f"at most {LIMIT} sessions" in err["message"], err
        assert int(r.headers["retry-after"]) >= 1, r.headers

    # the refused ones started nothing: only the running sessions have rows and rooms
    rows = (await svc.client.get("/v2/streaming/sessions")).json()["sessions"]
    assert sorted(s["session_id"] for s in rows) == sorted(r.json()["session_id"] for r in ok)
    for r in ok:
        started = r.json()
        await svc.first_frame(started["session_id"])
        assert await participants(svc.livekit, started["room"]) == {
            started["avatar_identity"],
            started["compositor_identity"],
        }

    # recovery: a slot frees when a session stops, and the next start is let in
    r = await svc.client.delete(f"/v2/streaming/sessions/{ok[0].json()['session_id']}")
    assert r.status_code == 200, r.text
    t1 = time.monotonic()
    nxt = await start()
    record(f"{REQUESTS} starts at once, limit {LIMIT}", "start after a stop", time.monotonic() - t1)
    assert nxt.status_code == 200, nxt.text
    assert (await start()).status_code == 429
