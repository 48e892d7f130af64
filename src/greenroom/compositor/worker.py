"""Compositors as LiveKit Agents jobs, dispatched explicitly across worker processes.

A worker registers agent name ``greenroom-compositor``. Nothing is dispatched to it
automatically; the API (or anyone) asks for a compositor in a room with::

    await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(
        agent_name="greenroom-compositor", room=room,
        metadata=json.dumps({"avatar_identity": "avatar-1", "background": "#0044ff"})))

Metadata: ``avatar_identity`` (required), ``background`` (spec string or object, default
``"none"``), ``options`` (``CompositorOptions`` fields, optional) and ``avatar`` (optional:
``{"provider": "local", "avatar_id", "voice", "quality"}`` runs the built-in avatar in the
same job, as ``avatar_identity``). The job joins as ``greenroom-<avatar_identity>`` with
``SUBSCRIBE_NONE`` and runs a :class:`Compositor` on the job's room until the room or the
compositor ends, or the service sends ``stop``. The Greenroom service drives it with the
commands of :mod:`greenroom.compositor.commands`. A second dispatch for the same avatar
replaces the first (LiveKit keeps one participant per identity).

Load is the number of running compositors over ``max_sessions``, so LiveKit spreads
sessions by what a worker can carry rather than by a CPU average.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from livekit.agents import AgentServer, AutoSubscribe, JobContext, JobProcess, JobRequest, cli

from greenroom.avatars.base import JOB_AVATARS
from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor.command_receiver import CommandReceiver
from greenroom.compositor.commands import (
    ATTR_ERROR,
    ATTR_STATE,
    STATE_FAILED,
    STATE_JOINED,
    STATE_LIVE,
)
from greenroom.compositor.compositor import Compositor
from greenroom.compositor.control import coerce_background
from greenroom.compositor.options import CompositorOptions, compositor_identity
from greenroom.errors import GreenroomError, InvalidInput

if TYPE_CHECKING:
    from greenroom.avatars.base import AvatarSession

logger = logging.getLogger("greenroom.compositor.worker")

AGENT_NAME = "greenroom-compositor"
DEFAULT_MAX_SESSIONS = 4
DEFAULT_CPU_FULL = 0.85  # CPU use (0..1) at which a worker takes no more jobs
DEFAULT_DRAIN_TIMEOUT = 1800  # s a stopping worker waits for its sessions to end
FIRST_FRAME_TIMEOUT = 300.0  # s a job waits for its avatar's first frame before it says so


@dataclass(frozen=True)
class AvatarRequest:
    """The built-in avatar a job runs beside its compositor."""

    provider: str = "local"
    avatar_id: str = "default"
    voice: str | None = None
    quality: str = "high"
    options: dict[str, Any] = field(default_factory=dict)  # the provider's own options

    @classmethod
    def parse(cls, raw: object) -> AvatarRequest:
        if not isinstance(raw, dict):
            raise InvalidInput("avatar must be an object", field="avatar")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidInput(f"unknown avatar keys: {', '.join(sorted(unknown))}", field="avatar")
        provider = raw.get("provider", "local")
        if provider not in JOB_AVATARS:
            raise InvalidInput(
                f"a job runs only the built-in avatar ({', '.join(sorted(JOB_AVATARS))}), "
                f"not {provider!r}",
                field="avatar.provider",
            )
        try:
            return cls(**raw)
        except TypeError as exc:
            raise InvalidInput(f"avatar: {exc}", field="avatar") from None


@dataclass(frozen=True)
class DispatchRequest:
    """What a dispatch's metadata asks for."""

    avatar_identity: str
    background: BackgroundSpec
    options: CompositorOptions
    avatar: AvatarRequest | None = None

    def to_metadata(self, options: dict[str, Any] | None = None) -> str:
        """The metadata that asks for this; ``options`` as JSON-able ``CompositorOptions``
        fields (only those that differ from the defaults need be sent)."""
        data: dict[str, Any] = {
            "avatar_identity": self.avatar_identity,
            "background": json.loads(self.background.to_attribute()),
        }
        if options:
            data["options"] = options
        if self.avatar is not None:
            data["avatar"] = asdict(self.avatar)
        return json.dumps(data)


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
    job_avatar = None if data.get("avatar") is None else AvatarRequest.parse(data["avatar"])
    return DispatchRequest(avatar, background, options, job_avatar)


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
    """One job = one compositor on the job's room (and the built-in avatar, if asked)."""
    request = parse_dispatch_metadata(ctx.job.metadata)
    t0 = time.monotonic()
    took: dict[str, float] = {}
    # the avatar joins while the job connects (it has its own connection): the first frame
    # comes sooner by the time of one join
    starting = (
        asyncio.create_task(
            _start_avatar(request.avatar, request.avatar_identity, ctx.room.name),
            name="greenroom-avatar-start",
        )
        if request.avatar is not None
        else None
    )
    try:
        await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
        took["connected_ms"] = (time.monotonic() - t0) * 1000
    except BaseException:
        if starting is not None:
            await _abandon(starting)
        raise
    avatar = None
    try:
        if starting is not None:
            avatar = await starting
            ctx.add_shutdown_callback(avatar.aclose)
            took["avatar_ms"] = (time.monotonic() - t0) * 1000
        comp = await Compositor.attach(
            ctx.room, request.avatar_identity, request.background, request.options
        )
        took["compositor_ms"] = (time.monotonic() - t0) * 1000
    except GreenroomError as exc:  # tell the service why, then end the job
        field = exc.field if isinstance(exc, InvalidInput) else None
        error = {"code": exc.code, "message": exc.message, "field": field}
        with contextlib.suppress(Exception):
            await ctx.room.local_participant.set_attributes(
                {ATTR_STATE: STATE_FAILED, ATTR_ERROR: json.dumps(error)}
            )
        ctx.shutdown(exc.message)
        return
    receiver = CommandReceiver(ctx.room, comp, avatar, ctx.shutdown)
    receiver.start()
    ctx.add_shutdown_callback(receiver.aclose)
    ctx.add_shutdown_callback(comp.aclose)
    await comp.publish_status({ATTR_STATE: STATE_JOINED})
    logger.info(
        "job started: %s",
        ", ".join(f"{k[:-3]} after {v:.0f} ms" for k, v in took.items()),
        extra={k: round(v) for k, v in took.items()},
    )

    def _ended(reason: str) -> None:
        if reason != "closed":  # it ended by itself: end the job too, with the reason
            ctx.shutdown(reason)

    comp.on_close(_ended)
    if avatar is not None:
        avatar.on_state(
            lambda state: ctx.shutdown("avatar stopped") if state == "stopped" else None
        )
    await _announce_live(comp)


async def _abandon(starting: asyncio.Task[AvatarSession]) -> None:
    """Stop an avatar start whose job failed to connect, and the avatar if it had started."""
    starting.cancel()
    try:
        avatar = await starting
    except (asyncio.CancelledError, Exception):
        return  # it had not started, or failed: nothing to stop
    await avatar.aclose()


async def _announce_live(comp: Compositor) -> None:
    """``greenroom.state`` = live once the first composited frame is out (the service's
    first-frame wait reads it)."""
    try:
        await comp.wait_first_frame(FIRST_FRAME_TIMEOUT)
    except (TimeoutError, GreenroomError) as exc:
        logger.warning("no composited frame yet: %s", exc)
        return
    await comp.publish_status({ATTR_STATE: STATE_LIVE})


async def _start_avatar(req: AvatarRequest, identity: str, room: str) -> AvatarSession:
    """The built-in avatar, joined to the job's room with the worker's LiveKit credentials."""
    from greenroom.avatars import RoomTarget, get_provider
    from greenroom.config import get_settings

    settings = get_settings()
    return await get_provider(req.provider).start(
        RoomTarget.from_settings(settings, room),
        avatar_id=req.avatar_id,
        voice=req.voice,
        identity=identity,
        quality=req.quality,
        settings=settings,
        **req.options,
    )


def prewarm(_proc: JobProcess) -> None:
    """Load the keyer's and the built-in avatar's compiled kernels before a job needs them
    (a job that loads them itself starts about a second later); ``kill -USR1`` on a job
    process prints every thread's stack to the worker's log (for a job that seems stuck).

    LiveKit Agents starts the next idle process the moment a job takes the current one, so
    this runs beside a session that is starting: at the lowest CPU priority, it waits for
    that session instead of slowing its first frame."""
    import faulthandler
    import signal

    from greenroom.warmup import warm_up

    faulthandler.register(signal.SIGUSR1, all_threads=True)

    def politely() -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only
        warm_up()

    warming = threading.Thread(target=politely, name="greenroom-warm-up")
    warming.start()
    warming.join()


class WorkerLoad:
    """The load a worker reports to LiveKit: full once it runs ``max_sessions`` compositors
    or once the machine's CPU (a 2.5 s moving average, container-aware) reaches ``cpu_full``,
    whichever comes first (``cpu_full=0``: sessions only). LiveKit gives new jobs to workers by ``1 - load`` and none to a
    worker at its threshold, so a machine shared with other work takes fewer sessions."""

    def __init__(self, max_sessions: int, cpu_full: float = DEFAULT_CPU_FULL) -> None:
        if max_sessions < 1:
            raise InvalidInput("max_sessions must be at least 1", field="max_sessions")
        if cpu_full != 0 and not 0.1 <= cpu_full <= 1.0:
            raise InvalidInput("cpu_full must be 0 (off) or between 0.1 and 1.0", field="cpu_full")
        self.max_sessions = max_sessions
        self.cpu_full = cpu_full
        self.threshold = (max_sessions - 0.5) / max_sessions  # reached only at max_sessions
        self._cpu: list[float] = []
        self._lock = threading.Lock()
        self._sampler: threading.Thread | None = None

    def _sample(self) -> None:
        from livekit.agents.utils.hw import get_cpu_monitor

        monitor = get_cpu_monitor()
        while True:
            value = monitor.cpu_percent(interval=0.5)  # 0..1 of the CPUs this process may use
            with self._lock:
                self._cpu = [*self._cpu[-4:], value]

    def cpu(self) -> float:
        """The CPU moving average, 0..1 (0 until the first sample)."""
        if self._sampler is None:
            self._sampler = threading.Thread(target=self._sample, daemon=True, name="cpu-load")
            self._sampler.start()
        with self._lock:
            return sum(self._cpu) / len(self._cpu) if self._cpu else 0.0

    def of(self, running: int, cpu: float) -> float:
        """Load for ``running`` compositors at CPU use ``cpu``: ``cpu_full`` maps onto the
        same threshold as ``max_sessions``."""
        by_sessions = running / self.max_sessions
        by_cpu = cpu / self.cpu_full * self.threshold if self.cpu_full else 0.0
        return min(1.0, max(by_sessions, by_cpu))

    def __call__(self, server: AgentServer) -> float:
        return self.of(len(server.active_jobs), self.cpu() if self.cpu_full else 0.0)


def build_server(
    *,
    url: str,
    api_key: str,
    api_secret: str,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    cpu_full: float = DEFAULT_CPU_FULL,
    http_port: int = 0,
    http_host: str = "127.0.0.1",
    drain_timeout: int = DEFAULT_DRAIN_TIMEOUT,
) -> AgentServer:
    """An ``AgentServer`` that runs compositors for explicit dispatches (see :class:`WorkerLoad`
    for when it is full). On SIGTERM it takes no new jobs and waits up to ``drain_timeout``
    seconds for its running sessions to end before it exits."""
    load = WorkerLoad(max_sessions, cpu_full)
    server = AgentServer(
        ws_url=url,
        api_key=api_key,
        api_secret=api_secret,
        setup_fnc=prewarm,
        load_fnc=load,
        load_threshold=load.threshold,
        num_idle_processes=1,
        initialize_process_timeout=60.0,
        host=http_host,
        port=http_port,
        drain_timeout=drain_timeout,
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
