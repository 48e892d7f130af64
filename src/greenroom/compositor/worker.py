"""Compositors as LiveKit Agents jobs, dispatched explicitly across worker processes.

A worker registers agent name ``greenroom-compositor``. Nothing is dispatched to it
automatically; the API (or anyone) asks for a compositor in a room with::

    await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(
        agent_name="greenroom-compositor", room=room,
        metadata=json.dumps({"avatar_identity": "avatar-1", "background": "#0044ff"})))

Metadata: ``avatar_identity`` (required), ``background`` (spec string or object, default
``"none"``) and ``options`` (``CompositorOptions`` fields, optional). The job joins as
``greenroom-<avatar_identity>`` with ``SUBSCRIBE_NONE`` and runs a :class:`Compositor`
on the job's room until the room or the compositor ends. A second dispatch for the same
avatar replaces the first (LiveKit keeps one participant per identity).

Load is the number of running compositors over ``max_sessions``, so LiveKit spreads
sessions by what a worker can carry rather than by a CPU average.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import warnings
from dataclasses import dataclass, fields
from typing import Any

from livekit.agents import AgentServer, AutoSubscribe, JobContext, JobProcess, JobRequest, cli

from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor.compositor import Compositor
from greenroom.compositor.control import coerce_background
from greenroom.compositor.options import CompositorOptions, compositor_identity
from greenroom.errors import InvalidInput

logger = logging.getLogger("greenroom.compositor.worker")

AGENT_NAME = "greenroom-compositor"
DEFAULT_MAX_SESSIONS = 4


@dataclass(frozen=True)
class DispatchRequest:
    """What a dispatch's metadata asks for."""

    avatar_identity: str
    background: BackgroundSpec
    options: CompositorOptions

    def to_metadata(self) -> str:
        return json.dumps(
            {
                "avatar_identity": self.avatar_identity,
                "background": json.loads(self.background.to_attribute()),
            }
        )


def parse_dispatch_metadata(metadata: str) -> DispatchRequest:
    """Parse a dispatch's JSON metadata.

    Raises:
        InvalidInput: not JSON, no ``avatar_identity``, or a bad background or option.
    """
    try:
        data: Any = json.loads(metadata or "")
    except json.JSONDecodeError:
        raise InvalidInput(
            'dispatch metadata must be JSON like {"avatar_identity": "...", "background": "..."}',
            field="metadata",
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput("dispatch metadata must be a JSON object", field="metadata")
    avatar = data.get("avatar_identity")
    if not isinstance(avatar, str) or not avatar:
        raise InvalidInput("avatar_identity is required", field="avatar_identity")
    background = coerce_background(data.get("background", "none"))
    raw = data.get("options") or {}
    if not isinstance(raw, dict):
        raise InvalidInput("options must be an object", field="options")
    known = {f.name for f in fields(CompositorOptions)}
    unknown = set(raw) - known
    if unknown:
        raise InvalidInput(f"unknown options: {', '.join(sorted(unknown))}", field="options")
    if isinstance(raw.get("chroma"), dict):
        from greenroom.keying import ChromaParams

        try:
            raw = {**raw, "chroma": ChromaParams(**raw["chroma"])}
        except InvalidInput:
            raise
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"options.chroma: {exc}", field="options.chroma") from None
    for name in ("reconnect_backoff", "rpc_rate", "avatar_kinds"):  # JSON lists -> tuples
        if isinstance(raw.get(name), list):
            raw = {**raw, name: tuple(raw[name])}
    try:
        options = CompositorOptions(**raw)
    except TypeError as exc:
        raise InvalidInput(f"options: {exc}", field="options") from None
    return DispatchRequest(avatar, background, options)


async def on_request(req: JobRequest) -> None:
    """Accept a dispatch as ``greenroom-<avatar>`` with the compositor's attributes."""
    try:
        request = parse_dispatch_metadata(req.job.metadata)
    except InvalidInput as exc:
        logger.error("rejecting dispatch in room %s: %s", req.room.name, exc.message)
        await req.reject()
        return
    await req.accept(
        name="Greenroom",
        identity=compositor_identity(request.avatar_identity),
        attributes=Compositor.attributes_for(request.avatar_identity, request.background),
    )


async def entrypoint(ctx: JobContext) -> None:
    """One job = one compositor on the job's room."""
    request = parse_dispatch_metadata(ctx.job.metadata)
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    comp = await Compositor.attach(
        ctx.room, request.avatar_identity, request.background, request.options
    )
    ctx.add_shutdown_callback(comp.aclose)

    def _ended(reason: str) -> None:
        if reason != "closed":  # it ended by itself: end the job too, with the reason
            ctx.shutdown(reason)

    comp.on_close(_ended)


def prewarm(proc: JobProcess) -> None:
    """Load the keyer's compiled kernels before a job needs them."""
    import numpy as np

    from greenroom.backgrounds import Scene
    from greenroom.keying import I420Frame
    from greenroom.keying.params import DEFAULT_KEY

    scene = Scene(BackgroundSpec.parse("#000000"), mode="chroma")
    frame = I420Frame.blank(64, 64, DEFAULT_KEY)
    scene.render_i420(frame, 0.0)
    proc.userdata["warm"] = bool(np.any(frame.y))


def _load(server: AgentServer, max_sessions: int) -> float:
    return min(1.0, len(server.active_jobs) / max_sessions)


def build_server(
    *,
    url: str,
    api_key: str,
    api_secret: str,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    http_port: int = 0,
) -> AgentServer:
    """An ``AgentServer`` that runs compositors for explicit dispatches."""
    if max_sessions < 1:
        raise InvalidInput("max_sessions must be at least 1", field="max_sessions")
    server = AgentServer(
        ws_url=url,
        api_key=api_key,
        api_secret=api_secret,
        setup_fnc=prewarm,
        load_fnc=functools.partial(_load, max_sessions=max_sessions),
        # full once max_sessions run: load = n/max reaches 1.0 only then
        load_threshold=(max_sessions - 0.5) / max_sessions,
        num_idle_processes=1,
        initialize_process_timeout=60.0,
        port=http_port,
    )
    server.rtc_session(entrypoint, agent_name=AGENT_NAME, on_request=on_request)
    return server


def run_worker(server: AgentServer, *, log_level: str = "INFO", dev: bool = False) -> None:
    """Run the worker until SIGINT/SIGTERM (blocking), via the Agents CLI runner."""
    argv = ["greenroom worker", "dev" if dev else "start", "--log-level", log_level.upper()]
    saved = sys.argv
    sys.argv = argv
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            cli.run_app(server)
    finally:
        sys.argv = saved
