"""LiveKit's own agents frontend (``@livekit/components-react``'s ``useVoiceAssistant``,
bundled from tests/js_agents at set-up) shows the composited avatar, never the raw green one.

The hook takes as "the agent" the first agent participant without ``lk.publish_on_behalf``
and shows its camera, or else the camera of the agent participant whose
``lk.publish_on_behalf`` names it. Two room layouts, both with an agent, the built-in avatar
on green and a compositor on blue:

- a compositor of its own (``Compositor.start``) carrying ``publish_on_behalf`` = the agent,
  the avatar pointing at the compositor (``composited_by``);
- a compositor attached to the agent's own connection (what ``greenroom.agents`` does), the
  avatar pointing at the agent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from browser_helpers import CORNERS, BrowserPage, ThreadServer, close_to, sample, wait_for
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from livekit import rtc

from greenroom.avatars import RoomTarget
from greenroom.avatars.local import LocalAvatar
from greenroom.avatars.local._room import VIDEO_TRACK
from greenroom.compositor import TRACK_NAME, Compositor, CompositorOptions
from greenroom.livekit_server import LiveKitServer
from greenroom.tokens import agent_token, viewer_token

pytestmark = pytest.mark.browser

APP = Path(__file__).resolve().parents[1] / "js_agents"
BLUE = (0, 68, 255)
AGENT = "voice-agent"
AVATAR = "presenter"
OPTIONS = CompositorOptions(simulcast=False, stats_interval=0)


@pytest.fixture(scope="module", autouse=True)
def _app_built() -> None:
    if not (APP / "build" / "app.js").is_file():
        pytest.fail("agents frontend bundle missing: run `make setup` (tests/js_agents)")


@pytest.fixture
def app_server() -> AsyncIterator[ThreadServer]:
    app = FastAPI()
    app.mount("/", StaticFiles(directory=APP, html=True))
    with ThreadServer(app) as server:
        yield server


def _target(livekit: LiveKitServer, room: str) -> RoomTarget:
    return RoomTarget(livekit.url, livekit.api_key, livekit.api_secret, room)


async def _agent(target: RoomTarget) -> rtc.Room:
    """A voice agent as LiveKit Agents runs it: kind agent, no camera of its own."""
    room = rtc.Room()
    token = agent_token(
        target.api_key,
        target.api_secret,
        room=target.room,
        identity=AGENT,
        attributes={"lk.agent.state": "listening"},
    )
    await room.connect(target.url, token, rtc.RoomOptions(auto_subscribe=False))
    return room


async def _avatar(target: RoomTarget, composited_by: str) -> LocalAvatar:
    return await LocalAvatar.start(
        target, identity=AVATAR, width=640, height=360, fps=15.0, composited_by=composited_by
    )


async def _open(page: BrowserPage, server: ThreadServer, target: RoomTarget) -> dict[str, str]:
    token = viewer_token(target.api_key, target.api_secret, room=target.room, identity="viewer")
    await page.page.goto(f"{server.url}/index.html#url={target.url}&token={token}")

    async def shown() -> dict[str, str] | None:
        picked = await page.page.evaluate("() => window.picked || null")
        rgb = await sample(page.page, CORNERS, "video")
        if picked and picked["participant"] and rgb and all(close_to(c, BLUE) for c in rgb):
            return picked
        return None

    try:
        return await wait_for(shown, 120)
    except TimeoutError:
        picked = await page.page.evaluate("() => window.picked || null")
        rgb = await sample(page.page, CORNERS, "video")
        raise AssertionError(f"the frontend shows {picked} with corners {rgb}") from None


async def _raw_refused(page: BrowserPage) -> None:
    """LiveKit tells the page it may not subscribe to the avatar's raw camera."""
    js = (
        f"() => window.lkRoom.remoteParticipants.get({AVATAR!r})"
        f"?.getTrackPublicationByName({VIDEO_TRACK!r})?.permissionStatus"
    )
    try:
        await wait_for(lambda: _is(page.page.evaluate(js), "not_allowed"), 60)
    except TimeoutError:
        raise AssertionError(f"raw camera: {await page.page.evaluate(js)}") from None


async def _is(value: Awaitable[object], want: object) -> bool:
    return await value == want


async def test_hooks_pick_a_compositor_of_its_own(
    livekit: LiveKitServer, room_name: str, viewer_page: BrowserPage, app_server: ThreadServer
) -> None:
    target = _target(livekit, room_name)
    agent = await _agent(target)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(agent.disconnect)
        avatar = await _avatar(target, composited_by=f"greenroom-{AVATAR}")
        stack.push_async_callback(avatar.aclose)
        comp = await Compositor.start(
            target,
            AVATAR,
            "#0044ff",
            CompositorOptions(simulcast=False, stats_interval=0, publish_on_behalf=AGENT),
        )
        stack.push_async_callback(comp.aclose)
        await comp.wait_first_frame(180)

        picked = await _open(viewer_page, app_server, target)
        assert picked == {"agent": AGENT, "participant": comp.identity, "track": TRACK_NAME}
        await _raw_refused(viewer_page)
        assert not viewer_page.log.unexpected(), viewer_page.log.lines


async def test_hooks_pick_a_compositor_attached_to_the_agent(
    livekit: LiveKitServer, room_name: str, viewer_page: BrowserPage, app_server: ThreadServer
) -> None:
    target = _target(livekit, room_name)
    agent = await _agent(target)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(agent.disconnect)
        avatar = await _avatar(target, composited_by=AGENT)
        stack.push_async_callback(avatar.aclose)
        comp = await Compositor.attach(agent, AVATAR, "#0044ff", OPTIONS)
        stack.push_async_callback(comp.aclose)
        await comp.wait_first_frame(180)

        picked = await _open(viewer_page, app_server, target)
        assert picked == {"agent": AGENT, "participant": AGENT, "track": TRACK_NAME}
        await _raw_refused(viewer_page)
        assert not viewer_page.log.unexpected(), viewer_page.log.lines
