"""Sessions end to end: real LiveKit server, real compositor, a real avatar participant.

Start from a template with a colour background, read the composited frame back through the
snapshot endpoint and check the background around the avatar; switch to an uploaded image
and check again; stop, and the room is gone. Also: idle timeout, and what a viewer token
grants.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import numpy as np
import pytest
from livekit import api as lkapi
from livekit import rtc
from PIL import Image

from greenroom.api import create_app
from greenroom.compositor import RPC_SET_BACKGROUND
from greenroom.errors import NotFound
from greenroom.livekit_server import LiveKitServer

from . import disc_provider
from .support import make_settings, open_client, png_bytes

pytestmark = pytest.mark.livekit

BLUE = (0, 68, 255)
RED = (200, 30, 40)


def _local_available() -> bool:
    from greenroom.avatars import get_provider

    try:
        get_provider("local")
    except NotFound:
        return False
    return True


@pytest.fixture(scope="module")
def disc() -> disc_provider.DiscProvider:
    return disc_provider.register()


@pytest.fixture(
    params=[
        "disc",
        pytest.param("local", marks=pytest.mark.slow),
    ]
)
def provider(request: pytest.FixtureRequest, disc: disc_provider.DiscProvider) -> str:
    if request.param == "local" and not _local_available():
        pytest.skip("the built-in local avatar provider is not available in this tree")
    return request.param


@pytest.fixture
async def lk_client(data_dir: Path, livekit: LiveKitServer) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(data_dir, livekit))
    async for client in open_client(app):
        yield client


async def room_names(livekit: LiveKitServer) -> set[str]:
    async with lkapi.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        res = await lk.room.list_rooms(lkapi.ListRoomsRequest())
    return {r.name for r in res.rooms}


async def snapshot(client: httpx.AsyncClient, sid: str, timeout: float = 60.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/v2/streaming/sessions/{sid}/snapshot.png")
        if r.status_code == 200:
            assert r.headers["content-type"] == "image/png"
            return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        assert r.status_code == 409, r.text
        assert "no composited frame yet" in r.json()["error"]["message"], r.text
        assert time.monotonic() < deadline, "no composited frame in time"
        await asyncio.sleep(0.2)


def corners(img: np.ndarray, size: int = 48) -> list[np.ndarray]:
    h, w, _ = img.shape
    return [
        img[:size, :size],
        img[:size, w - size :],
        img[h - size :, :size],
        img[h - size :, w - size :],
    ]


def close_to(patch: np.ndarray, rgb: tuple[int, int, int], tol: float = 12.0) -> bool:
    return bool(np.abs(np.median(patch.reshape(-1, 3), axis=0) - np.array(rgb)).max() <= tol)


def avatar_visible(img: np.ndarray, background: tuple[int, int, int]) -> bool:
    """A good share of the centre differs clearly from the background: the avatar is there."""
    h, w, _ = img.shape
    centre = img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(np.int16)
    differs = np.abs(centre - np.array(background)).max(axis=2) > 60
    return bool(differs.mean() > 0.2)


async def wait_for(client: httpx.AsyncClient, sid: str, check, timeout: float = 15.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        img = await snapshot(client, sid)
        if check(img):
            return img
        assert time.monotonic() < deadline, "the composited picture did not change in time"
        await asyncio.sleep(0.2)


async def test_session_colour_then_uploaded_image_then_stop(
    lk_client: httpx.AsyncClient,
    livekit: LiveKitServer,
    provider: str,
    disc: disc_provider.DiscProvider,
) -> None:
    c = lk_client
    t = await c.post(
        "/v1/templates",
        json={
            "name": f"blue-{provider}",
            "provider": provider,
            "background": "#0044ff",
            "keying": {"mode": "auto"},  # every provider's avatar stands on a green screen
        },
    )
    assert t.status_code == 201, t.text
    r = await c.post(
        "/v2/streaming/sessions",
        json={"template_id": t.json()["id"], "text": "Hello there", "livekit_identity": "alice"},
    )
    assert r.status_code == 200, r.text
    started = r.json()
    sid = started["session_id"]
    assert started["status"] == "started"
    assert started["livekit_url"] == started["stream_url"] == livekit.url
    assert started["background"] == "#0044ff"
    assert started["compositor_identity"] == f"greenroom-{started['avatar_identity']}"
    assert started["viewer_url"].startswith(f"http://127.0.0.1:8080/viewer/{sid}#")
    assert started["room"] in await room_names(livekit)

    # the viewer token: this room, identity alice, subscribe only, expiring
    claims = jwt.decode(started["access_token"], livekit.api_secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["video"]["room"] == started["room"]
    assert claims["video"]["canSubscribe"] is True and claims["video"]["canPublish"] is False
    assert claims["exp"] - time.time() < 3 * 3600

    # before the avatar's first frame the compositor shows the background alone; then the
    # avatar appears, at full size once its top simulcast layer arrives
    # the keyer's screen estimate settles over the first frames: wait for the whole picture
    img = await wait_for(
        c,
        sid,
        lambda im: (
            im.shape == (720, 1280, 3)
            and avatar_visible(im, BLUE)
            and all(close_to(p, BLUE) for p in corners(im))
        ),
        timeout=60,
    )
    assert all(close_to(p, BLUE) for p in corners(img)), [
        np.median(p.reshape(-1, 3), 0) for p in corners(img)
    ]
    assert avatar_visible(img, BLUE)

    # switch to an uploaded image, live
    up = await c.post("/v1/backgrounds", files={"file": ("red.png", png_bytes((1280, 720), RED))})
    assert up.status_code == 201, up.text
    bg_id = up.json()["id"]
    r = await c.put(
        f"/v2/streaming/sessions/{sid}/background", json={"background": bg_id, "transition": 0}
    )
    assert r.status_code == 200, r.text
    assert r.json()["background"] == bg_id
    img = await wait_for(c, sid, lambda im: all(close_to(p, RED) for p in corners(im)), timeout=30)
    assert avatar_visible(img, RED)

    # the library item is on screen: it cannot be deleted now
    r = await c.delete(f"/v1/backgrounds/{bg_id}")
    assert r.status_code == 409
    assert "running session" in r.json()["error"]["message"]

    # a bad background is refused and the picture stays
    r = await c.put(f"/v2/streaming/sessions/{sid}/background", json={"background": "#zzz"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "background"

    for path, body in [
        ("speak", {"text": "How are you?", "task_type": "talk"}),
        ("interrupt", None),
        ("keep_alive", None),
    ]:
        r = await c.post(f"/v2/streaming/sessions/{sid}/{path}", json=body)
        assert r.status_code == 200, (path, r.text)

    s = (await c.get(f"/v2/streaming/sessions/{sid}")).json()
    assert (s["status"], s["background"], s["template_id"]) == ("started", bg_id, t.json()["id"])
    assert s["metrics"]["frames_out"] > 0
    keyer = s["metrics"]["keyer"]
    assert (keyer["mode"], keyer["in_use"], keyer["decision"]["mode"]) == ("auto",) + (
        "chroma",
    ) * 2
    assert s["first_frame_ms"] is not None and s["first_frame_ms"] > 0
    if provider == "local":  # the built-in avatar really speaks: its state says so
        r = await c.post(f"/v2/streaming/sessions/{sid}/speak", json={"text": "One more thing."})
        assert r.status_code == 200
        deadline = time.monotonic() + 30
        while (await c.get(f"/v2/streaming/sessions/{sid}")).json()["avatar_state"] != "speaking":
            assert time.monotonic() < deadline, "the avatar never started speaking"
            await asyncio.sleep(0.1)
    if provider == "disc":
        spoken = disc.sessions[-1].spoken  # the opening text, then the speak call
        assert spoken == [("Hello there", "repeat"), ("How are you?", "talk")]
        assert s["key_color"] is not None

    metrics = (await c.get("/metrics")).text
    assert "greenroom_sessions_active 1.0" in metrics
    assert "greenroom_compositor_frames_out_total" in metrics

    r = await c.delete(f"/v2/streaming/sessions/{sid}")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["stop_reason"]) == ("stopped", "stopped_by_user")
    assert started["room"] not in await room_names(livekit)
    r = await c.post(f"/v2/streaming/sessions/{sid}/speak", json={"text": "still there?"})
    assert r.status_code == 409
    assert (
        r.json()["error"]["message"]
        == f"session {sid} is stopped (stopped_by_user); start a new session"
    )


async def test_idle_session_stops_itself_and_says_why(
    lk_client: httpx.AsyncClient, livekit: LiveKitServer, disc: disc_provider.DiscProvider
) -> None:
    c = lk_client
    t = (
        await c.post("/v1/templates", json={"name": "idle", "provider": "disc", "idle_timeout": 2})
    ).json()
    started = (await c.post("/v2/streaming/sessions", json={"template_id": t["id"]})).json()
    sid = started["session_id"]
    deadline = time.monotonic() + 20
    while (s := (await c.get(f"/v2/streaming/sessions/{sid}")).json())["status"] == "started":
        assert time.monotonic() < deadline, "the idle session did not stop"
        await asyncio.sleep(0.25)
    assert (s["status"], s["stop_reason"]) == ("stopped", "idle_timeout")
    assert started["room"] not in await room_names(livekit)


async def test_joining_an_existing_room_leaves_it_in_place(
    lk_client: httpx.AsyncClient,
    livekit: LiveKitServer,
    room_name: str,
    disc: disc_provider.DiscProvider,
) -> None:
    c = lk_client
    async with lkapi.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        await lk.room.create_room(lkapi.CreateRoomRequest(name=room_name, empty_timeout=60))
    t = (
        await c.post(
            "/v1/templates", json={"name": "mine", "provider": "disc", "background": "blur"}
        )
    ).json()
    r = await c.post(
        "/v2/streaming/sessions", json={"template_id": t["id"], "livekit_room": room_name}
    )
    assert r.status_code == 200, r.text
    assert r.json()["room"] == room_name
    await snapshot(c, r.json()["session_id"])
    s = (await c.delete(f"/v2/streaming/sessions/{r.json()['session_id']}")).json()
    assert s["room_created"] is False
    assert room_name in await room_names(livekit)  # not ours to delete


async def test_background_switched_through_the_rpc_is_reported(
    lk_client: httpx.AsyncClient, livekit: LiveKitServer, disc: disc_provider.DiscProvider
) -> None:
    """A viewer switches the background with its own token (LiveKit RPC to the compositor);
    the API reports the background in use, not the template's."""
    c = lk_client
    t = (
        await c.post(
            "/v1/templates", json={"name": "rpc", "provider": "disc", "background": "#0044ff"}
        )
    ).json()
    started = (await c.post("/v2/streaming/sessions", json={"template_id": t["id"]})).json()
    sid = started["session_id"]
    await wait_for(c, sid, lambda im: avatar_visible(im, BLUE), timeout=60)

    up = await c.post("/v1/backgrounds", files={"file": ("red.png", png_bytes((64, 36), RED))})
    assert up.status_code == 201, up.text
    viewer = rtc.Room()
    # every step bounded: a stuck connection fails the test with a reason, not a hang
    await asyncio.wait_for(viewer.connect(started["livekit_url"], started["access_token"]), 60)

    async def rpc(background: object) -> str:
        return await asyncio.wait_for(
            viewer.local_participant.perform_rpc(
                destination_identity=started["compositor_identity"],
                method=RPC_SET_BACKGROUND,
                payload=json.dumps({"background": background, "transition": 0}),
                response_timeout=30,
            ),
            60,
        )

    try:
        # a viewer names library items by id; the server's files stay out of reach
        assert "red.png" not in await rpc(up.json()["id"])
        await wait_for(c, sid, lambda im: avatar_visible(im, RED), timeout=30)
        refused = {
            "image:/etc/hostname": "file paths are not accepted",
            "/etc/hostname": "file paths are not accepted",
            json.dumps({"kind": "image", "path": "/etc/hostname"}): "needs 'library_id'",
        }
        for value, why in refused.items():
            with pytest.raises(rtc.RpcError) as err:
                await rpc(json.loads(value) if value.startswith("{") else value)
            assert why in err.value.message, err.value.message
        answer = await rpc("#ff8800")
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(viewer.disconnect(), 20)
    assert "ff8800" in answer.lower()
    await wait_for(
        c, sid, lambda im: all(close_to(p, (255, 136, 0)) for p in corners(im)), timeout=30
    )
    assert (await c.get(f"/v2/streaming/sessions/{sid}")).json()["background"] == "#ff8800"
    stopped = (await c.delete(f"/v2/streaming/sessions/{sid}")).json()
    assert stopped["background"] == "#ff8800"
