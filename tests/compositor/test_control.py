"""Background control through the RPC door: switch, crossfade timing, bad payloads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import numpy as np
import pytest
from livekit import rtc

from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor import (
    ATTR_AVATAR,
    ATTR_BACKGROUND,
    ATTR_KEY_COLOR,
    ATTR_ROLE,
    RPC_FORBIDDEN,
    RPC_INVALID_INPUT,
    RPC_RATE_LIMITED,
    RPC_SET_BACKGROUND,
    Compositor,
)

from .conftest import FIRST_FRAME, Target, Viewer, ViewerFrame, one_layer

pytestmark = pytest.mark.livekit

BLUE = np.array([0, 68, 255])
RED = np.array([255, 34, 0])


def corner(f: ViewerFrame) -> np.ndarray:
    """Mean colour of the top-left corner, 1/13 of the width and 1/7 of the height (100 x 100
    at 1280x720), at any size a loaded machine's viewer gets: never covered by the disc."""
    h, w = f.rgb.shape[:2]
    return f.rgb[: h // 7, : w // 13].reshape(-1, 3).astype(float).mean(0)


def corner_is(color: np.ndarray, tol: float = 25) -> callable:
    """True when the top-left corner (see ``corner``) is ``color``."""

    def check(f: ViewerFrame) -> bool:
        return float(np.abs(corner(f) - color).max()) < tol

    return check


async def test_rpc_switches_background_and_bad_payloads_leave_picture(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    await synthetic_avatar("avatar-rpc", flash=False, audio=False)
    # the viewer calls with a viewer token: this session lets viewers switch
    options = one_layer(viewer_control=True)
    comp = await Compositor.start(target, "avatar-rpc", BackgroundSpec.parse("#0044ff"), options)
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(comp.identity, corner_is(BLUE))
        caller = viewer.room.local_participant

        answer = await caller.perform_rpc(
            destination_identity=comp.identity,
            method=RPC_SET_BACKGROUND,
            payload=json.dumps({"background": "#ff2200", "transition": 0.3}),
            response_timeout=30,
        )
        assert json.loads(answer)["background"]["color"] == "#ff2200"
        # how fast the switch shows is a benchmark matter; here: that it shows
        await viewer.until(comp.identity, corner_is(RED), timeout=60)

        # the attributes mirror the new background
        p = viewer.room.remote_participants[comp.identity]
        await until(lambda: "#ff2200" in p.attributes.get(ATTR_BACKGROUND, ""), 30)
        assert json.loads(p.attributes[ATTR_BACKGROUND])["color"] == "#ff2200"
        assert p.attributes[ATTR_ROLE] == "compositor"
        assert p.attributes[ATTR_AVATAR] == "avatar-rpc"
        assert ATTR_KEY_COLOR in p.attributes

        bad = {
            "not json at all": "JSON",
            json.dumps({"background": "#zz0000"}): "background",
            json.dumps({"colour": "#00ff00"}): "background",
            json.dumps({"background": "#00ff00", "transition": -1}): "transition",
            # a room participant must not make the server open its files
            json.dumps({"background": "image:/etc/hostname"}): "files cannot be chosen",
            json.dumps({"background": {"kind": "video", "path": "/etc/hostname"}}): "files",
        }
        for payload, word in bad.items():
            with pytest.raises(rtc.RpcError) as err:
                await caller.perform_rpc(
                    destination_identity=comp.identity,
                    method=RPC_SET_BACKGROUND,
                    payload=payload,
                    response_timeout=30,
                )
            assert err.value.code == RPC_INVALID_INPUT
            assert word in err.value.message, err.value.message
            assert json.loads(err.value.data)["field"]

        # the picture is unaffected: still red, well after the rejected calls
        after = time.monotonic()
        frame = await viewer.frame(comp.identity, after=after + 0.5)
        assert corner_is(RED)(frame), (frame.rgb.shape, corner(frame))
        assert comp.background.color == "#ff2200"
    finally:
        await comp.aclose()


async def test_rpc_refuses_viewer_tokens_floods_and_oversized_payloads(
    target: Target, viewer: Viewer, synthetic_avatar
) -> None:
    avatar = await synthetic_avatar("avatar-lim", flash=False, audio=False)
    options = one_layer(rpc_rate=(2, 600.0), rpc_max_payload=1024)
    comp = await Compositor.start(target, "avatar-lim", "#0044ff", options)
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        await viewer.until(comp.identity, corner_is(BLUE))

        async def call(room: rtc.Room, payload: str) -> str:
            return await room.local_participant.perform_rpc(
                destination_identity=comp.identity,
                method=RPC_SET_BACKGROUND,
                payload=payload,
                response_timeout=30,
            )

        red = json.dumps({"background": "#ff2200", "transition": 0})
        # a viewer token may not switch unless the session allows viewer control
        with pytest.raises(rtc.RpcError) as err:
            await call(viewer.room, red)
        assert err.value.code == RPC_FORBIDDEN and "viewer" in err.value.message
        assert json.loads(err.value.data)["code"] == "forbidden"

        # an agent in the room may (here: the avatar's own connection)
        await call(avatar.room, red)
        await viewer.until(comp.identity, corner_is(RED), timeout=60)

        with pytest.raises(rtc.RpcError) as err:
            await call(avatar.room, json.dumps({"background": "#00ff00", "x": "a" * 2000}))
        assert err.value.code == RPC_INVALID_INPUT
        assert "limit is 1024 bytes" in err.value.message

        # third call from the same caller inside the window: refused with a retry hint
        with pytest.raises(rtc.RpcError) as err:
            await call(avatar.room, json.dumps({"background": "#00ff00"}))
        assert err.value.code == RPC_RATE_LIMITED
        assert "at most 2 per 600 s" in err.value.message, err.value.message

        frame = await viewer.frame(comp.identity, after=time.monotonic() + 0.5)
        assert corner_is(RED)(frame), (frame.rgb.shape, corner(frame))
        assert comp.background.color == "#ff2200"
    finally:
        await comp.aclose()


async def test_python_method_is_the_same_door(target: Target, viewer: Viewer, synthetic_avatar):
    await synthetic_avatar("avatar-py", flash=False, audio=False)
    comp = await Compositor.start(target, "avatar-py", "#0044ff", one_layer())
    try:
        await comp.wait_first_frame(FIRST_FRAME)
        spec = await comp.set_background({"kind": "color", "color": "#ff2200"}, transition=0)
        assert spec.color == "#ff2200"
        await viewer.until(comp.identity, corner_is(RED), timeout=60)
        from greenroom.errors import InvalidInput

        with pytest.raises(InvalidInput) as err:
            await comp.set_background("#ff2200", transition=99)
        assert err.value.field == "transition"
    finally:
        await comp.aclose()


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait until ``predicate()`` holds (a hang bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met within the hang bound"
        await asyncio.sleep(0.1)
