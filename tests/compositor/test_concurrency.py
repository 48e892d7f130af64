"""Compositors starting and closing side by side never hang and leave nothing behind.

Four compositors start at once against the real LiveKit server (two with an avatar
publishing, two told to composite avatars that never come), and close at once, twenty
times. Each step has a generous hang bound; on a hang the test fails with the stacks of
the tasks still running instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable

import pytest

from greenroom.compositor import Compositor, CompositorOptions
from greenroom.compositor.synthetic import DiscScene, SyntheticAvatar

from .conftest import Target, Viewer

pytestmark = [pytest.mark.livekit, pytest.mark.slow]

ROUNDS = 20
COMPOSITORS = 4
HANG_BOUND = 180.0  # s for one step of one round; a healthy step takes a few seconds


async def within(aws: Iterable[Awaitable[object]], what: str) -> list[object]:
    """Run ``aws`` together; fail (with the stacks of what is stuck) past ``HANG_BOUND``."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    _, pending = await asyncio.wait(tasks, timeout=HANG_BOUND)
    if pending:
        stacks = []
        for t in asyncio.all_tasks():
            if t is not asyncio.current_task():
                frames = t.get_stack(limit=8)
                where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
                stacks.append(f"{t.get_name()}: {where}")
        for t in pending:
            t.cancel()
        pytest.fail(f"{what} hung for {HANG_BOUND:g} s; tasks:\n" + "\n".join(stacks))
    return [t.result() for t in tasks]


def greenroom_tasks() -> list[str]:
    return sorted(
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("greenroom-") and not t.done()
    )


@pytest.mark.timeout(900)  # twenty rounds on a loaded machine; each step has its own bound
async def test_four_compositors_start_and_close_together_twenty_times(
    target: Target, viewer: Viewer
) -> None:
    # the viewer keeps the room open (LiveKit closes a room that only agents are in)
    avatars = []
    for i in range(2):  # small frames: the avatars are not what is under test
        av = SyntheticAvatar(scene=DiscScene(width=320, height=180, motion=False), flash=False)
        await av.start(target.url, target.api_key, target.api_secret, target.room, f"avatar-{i}")
        avatars.append(av)
    opts = CompositorOptions(stats_interval=0, width=320, height=180)
    try:
        for round_ in range(ROUNDS):
            comps: list[Compositor] = await within(  # type: ignore[assignment]
                (
                    Compositor.start(target, f"avatar-{i}", "#0044ff", opts)
                    for i in range(COMPOSITORS)
                ),
                f"round {round_}: starting",
            )
            if round_ % 2:  # every other round: close while frames flow
                await within((c.wait_first_frame(HANG_BOUND) for c in comps[:2]), "first frames")
            # close each twice at once: every caller must wait for the one teardown
            await within([c.aclose() for _ in range(2) for c in comps], f"round {round_}: closing")
            assert all(c.closed and c.closed_reason == "closed" for c in comps)
            assert all(c.room is None for c in comps)
            # a task whose step is inside the keyer thread ends when that step returns (the
            # first round may be compiling kernels on a cold machine): wait, bounded
            deadline = time.monotonic() + 60
            while greenroom_tasks() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert greenroom_tasks() == [], f"round {round_}: tasks left {greenroom_tasks()}"

        # the room forgets every compositor: nothing of them is left on the server
        identities = {c.identity for c in comps}
        deadline = time.monotonic() + HANG_BOUND
        while identities & set(viewer.room.remote_participants):
            assert time.monotonic() < deadline, "compositors still in the room"
            await asyncio.sleep(0.2)
    finally:
        for av in avatars:
            await av.aclose()
