"""Pure parts of the compositor: options, payload parsing, error mapping, fps cap,
mailbox, stats and Prometheus output, dispatch metadata."""

from __future__ import annotations

import json

import pytest
from livekit import rtc
from prometheus_client import generate_latest

from greenroom.compositor import (
    REGISTRY,
    RPC_INTERNAL,
    RPC_INVALID_INPUT,
    CompositorOptions,
    compositor_identity,
    parse_set_background,
)
from greenroom.compositor.control import RPC_RATE_LIMITED, CallerRefused, RateLimiter, to_rpc_error
from greenroom.compositor.stats import SessionStats
from greenroom.compositor.video import FpsCap, InFrame, LatestFrameSlot
from greenroom.compositor.worker import parse_dispatch_metadata
from greenroom.errors import InvalidInput, SetupError

pytestmark = pytest.mark.unit


def test_identity_names_the_avatar() -> None:
    assert compositor_identity("avatar-1") == "greenroom-avatar-1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "magic"}, "mode"),
        ({"max_bitrate": 10}, "max_bitrate"),
        ({"max_fps": 0}, "max_fps"),
        ({"video_codec": "mpeg2"}, "video_codec"),
        ({"transition": 11}, "transition"),
        ({"width": 641}, "width"),
        ({"reconnect_backoff": (2.0, 1.0)}, "reconnect_backoff"),
        ({"chroma": {"despill": 0.5}}, "chroma"),
        ({"rpc_rate": (0, 10.0)}, "rpc_rate"),
        ({"rpc_rate": (5, -1)}, "rpc_rate"),
        ({"rpc_max_payload": 1_000_000}, "rpc_max_payload"),
        ({"avatar_kinds": ("robot",)}, "avatar_kinds"),
        ({"avatar_kinds": "agent"}, "avatar_kinds"),
        ({"avatar_attributes": {"greenroom.session": 7}}, "avatar_attributes"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        CompositorOptions(**kwargs)
    assert err.value.field == field


def test_payload_forms() -> None:
    spec, t = parse_set_background('{"background": "#00FF00", "transition": 0.5}')
    assert (spec.kind, spec.color, t) == ("color", "#00ff00", 0.5)
    spec, t = parse_set_background('{"background": {"kind": "blur", "blur_radius": 30}}')
    assert (spec.kind, spec.blur_radius, t) == ("blur", 30, None)


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ("#00ff00", "payload", "not JSON"),
        ('"#00ff00"', "background", '"background"'),
        ('{"background": "#0f0"}', "background", "#0f0"),
        ('{"background": {"kind": "color"}}', "background", "color"),
        ('{"background": {"kind": "blur", "blur_radius": 0}}', "background.blur_radius", "blur"),
        ('{"background": "#00ff00", "transition": "slow"}', "transition", "number"),
        ('{"background": "#00ff00", "fade": 1}', "fade", "unknown"),
        ('{"background": 7}', "background", "spec string"),
    ],
)
def test_bad_payloads_name_the_problem(payload: str, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_set_background(payload)
    assert err.value.field == field
    assert words in err.value.message
    rpc = to_rpc_error(err.value)
    assert rpc.code == RPC_INVALID_INPUT
    assert rpc.message.startswith(field)
    assert json.loads(rpc.data) == {"code": "invalid_input", "message": rpc.message, "field": field}


def test_payload_size_limit_is_in_bytes_and_says_the_limit() -> None:
    payload = json.dumps({"background": "#00ff00", "pad": "é" * 3000})  # 6000+ bytes
    with pytest.raises(InvalidInput) as err:
        parse_set_background(payload, max_bytes=4096)
    assert err.value.field == "payload"
    assert "the limit is 4096 bytes" in err.value.message
    spec, _ = parse_set_background('{"background": "#00ff00"}', max_bytes=64)
    assert spec.color == "#00ff00"


def test_rate_limiter_counts_each_caller_in_a_sliding_window() -> None:
    limiter = RateLimiter(count=3, seconds=10.0)
    assert [limiter.retry_after("alice", t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after("alice", 3.0) == pytest.approx(7.0)  # refused, not counted
    assert limiter.retry_after("bob", 3.0) == 0.0  # callers are counted apart
    assert limiter.retry_after("alice", 10.5) == 0.0  # the call at 0.0 left the window
    assert limiter.retry_after("alice", 10.6) > 0


def test_refused_callers_get_their_own_rpc_codes() -> None:
    err = to_rpc_error(CallerRefused("slow down", code="rate_limited", rpc_code=RPC_RATE_LIMITED))
    assert err.code == RPC_RATE_LIMITED and err.message == "slow down"
    assert json.loads(err.data)["code"] == "rate_limited"


def test_other_errors_do_not_leak_details() -> None:
    assert to_rpc_error(SetupError("no model")).code == RPC_INTERNAL
    err = to_rpc_error(RuntimeError("/secret/path exploded"))
    assert err.code == RPC_INTERNAL and "secret" not in err.message
    same = rtc.RpcError(1500, "x")
    assert to_rpc_error(same) is same


def test_fps_cap_keeps_jittery_30_and_halves_60() -> None:
    cap = FpsCap(30)
    jitter = [0.0, 0.012, -0.01, 0.008, -0.012]
    admitted = sum(cap.admit(i / 30 + jitter[i % 5]) for i in range(300))
    assert admitted == 300
    cap = FpsCap(30)
    admitted = sum(cap.admit(i / 60) for i in range(600))
    assert 299 <= admitted <= 305  # half, and the bucket's first burst
    # a receive path that stalls for three frame times, then hands over the frames at once
    cap = FpsCap(30)
    times = [i / 30 for i in range(30)] + [33 / 30 + k * 0.002 for k in range(4)]
    times += [(34 + i) / 30 for i in range(30)]
    assert all(cap.admit(t) for t in times)


async def test_slot_keeps_newest_and_counts_replaced() -> None:
    stats = SessionStats("unit-slot", "a")
    slot = LatestFrameSlot(stats)
    for i in range(3):
        slot.put(InFrame(bytearray(6), 2, 2, float(i), None))
    got = await slot.get(timeout=0.1)
    assert got is not None and got.received == 2.0
    assert stats.dropped["replaced"] == 2
    assert await slot.get(timeout=0.01) is None
    stats.close()


def test_stats_snapshot_and_prometheus_labels() -> None:
    stats = SessionStats("unit-stats", "avatar-z")
    for i in range(100):
        stats.frame_in()
        stats.frame_out(now=i / 30, keying_ms=4.0 + i % 3, latency_ms=10.0 + i % 10, e2e_ms=None)
    stats.drop("late")
    snap = stats.snapshot(now=100 / 30)
    assert snap["frames_in"] == 100 and snap["frames_out"] == 100 and snap["dropped"] == 1
    assert 14 <= snap["latency_ms_p50"] <= 15 and snap["latency_ms_p95"] == pytest.approx(
        19, abs=0.1
    )
    text = generate_latest(REGISTRY).decode()
    assert (
        'greenroom_compositor_frames_out_total{avatar="avatar-z",session="unit-stats"} 100.0'
        in text
    )
    assert 'reason="late"' in text
    stats.close()
    assert 'session="unit-stats"' not in generate_latest(REGISTRY).decode()


def test_dispatch_metadata_errors_name_the_field() -> None:
    for metadata, field in (
        ("", "metadata"),
        ("[]", "metadata"),
        ("{}", "avatar_identity"),
        ('{"avatar_identity": "a", "background": "#12"}', "background"),
        ('{"avatar_identity": "a", "options": {"fps": 3}}', "options"),
        ('{"avatar_identity": "a", "options": {"max_fps": 500}}', "max_fps"),
    ):
        with pytest.raises(InvalidInput) as err:
            parse_dispatch_metadata(metadata)
        assert err.value.field == field, metadata
    req = parse_dispatch_metadata(
        '{"avatar_identity": "a", "background": {"kind": "blur"}, "options": {"max_fps": 15}}'
    )
    assert req.background.kind == "blur" and req.options.max_fps == 15
    assert json.loads(req.to_metadata())["avatar_identity"] == "a"
    req = parse_dispatch_metadata(
        '{"avatar_identity": "a", "options": {"chroma": {"despill": 0.4}}}'
    )
    assert req.options.chroma is not None and req.options.chroma.despill == 0.4
    req = parse_dispatch_metadata(
        '{"avatar_identity": "a", "options": {"rpc_rate": [3, 5], "avatar_kinds": ["agent"],'
        ' "avatar_attributes": {"greenroom.session": "s1"}, "viewer_control": true}}'
    )
    assert req.options.rpc_rate == (3, 5) and req.options.avatar_kinds == ("agent",)
    assert req.options.avatar_attributes == {"greenroom.session": "s1"}
    with pytest.raises(InvalidInput) as err:
        parse_dispatch_metadata('{"avatar_identity": "a", "options": {"chroma": {"nope": 1}}}')
    assert err.value.field == "options.chroma"


def test_keying_the_next_frames_never_overwrites_the_snapshot() -> None:
    """Output buffers are reused; the published snapshot must still show its own frame."""
    import io

    import numpy as np
    from PIL import Image

    from greenroom.backgrounds import BackgroundSpec, Scene
    from greenroom.compositor.frames import FrameLoop
    from greenroom.keying import I420Frame

    w, h = 64, 48
    scene = Scene(background=BackgroundSpec.parse("#0044ff"), mode="chroma")
    frames = FrameLoop(
        scene, CompositorOptions(), SessionStats("s", "a"), lambda: None, lambda: True
    )
    colours = [(200, 30, 30), (30, 200, 200), (220, 220, 40), (200, 30, 30), (230, 120, 20)]
    try:
        for i, colour in enumerate(colours):
            rgb = np.empty((h, w, 3), np.uint8)
            rgb[:] = (0, 177, 64)  # green screen, the avatar's block in the middle
            rgb[12:36, 16:48] = colour
            src = bytearray(I420Frame.from_rgb(rgb).to_bytes())
            snapshot = frames.snapshot_png()
            data, _ = frames._render(src, w, h, i / 30)
            if snapshot is not None:  # keying this frame left the published one alone
                assert frames.snapshot_png() == snapshot
            frames.last = (data, w, h)  # published
            png = frames.snapshot_png()
            assert png is not None
            seen = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[h // 2, w // 2]
            assert np.abs(seen.astype(int) - colour).max() < 16, (i, seen, colour)
    finally:
        frames._pool.shutdown()
        scene.close()


async def test_within_does_not_wait_for_a_step_that_ignores_cancel() -> None:
    """A step that swallows its cancellation (an SDK call whose answer never comes) must not
    hold its caller: a cancelled caller ends at once, and a timeout raises at its bound."""
    import asyncio

    from greenroom.compositor.video import within

    release = asyncio.Event()

    async def stubborn() -> str:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores the cancel
        return "late"

    caller = asyncio.ensure_future(within(stubborn(), 60))
    await asyncio.sleep(0.05)
    caller.cancel()
    done, _ = await asyncio.wait({caller}, timeout=5)
    assert caller in done and caller.cancelled()

    with pytest.raises(TimeoutError):
        await within(stubborn(), 0.1)
    assert await within(asyncio.sleep(0, "ok"), 5) == "ok"
    release.set()
