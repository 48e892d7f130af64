"""``greenroom compositor`` (one compositor in this process) and ``greenroom worker``
(a LiveKit Agents worker that runs compositors for explicit dispatches)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import NoReturn

import typer
from rich.console import Console

from greenroom.cli.serve import livekit_hosts, refuse_unsafe_exposure
from greenroom.config import get_settings
from greenroom.errors import GreenroomError

console = Console(stderr=True)


@dataclass(frozen=True)
class _Target:
    url: str
    api_key: str
    api_secret: str
    room: str


def compositor(
    room: str = typer.Option(..., "--room", help="LiveKit room the avatar is in."),
    avatar: str = typer.Option(..., "--avatar", help="Exact identity of the avatar participant."),
    background: str = typer.Option(
        "#00b140", "--background", "-b", help="'#RRGGBB', 'blur', 'none', 'image:<path>', ..."
    ),
    mode: str = typer.Option(
        "chroma", help="'chroma' (green screen), 'segment' or 'auto' (look and pick)."
    ),
    max_bitrate: int = typer.Option(2_500_000, help="Bits/s of the top simulcast layer."),
    max_fps: float = typer.Option(30.0, help="Output frame-rate cap."),
    codec: str = typer.Option("vp8", help="vp8, h264, vp9 or av1."),
    simulcast: bool = typer.Option(True, help="Publish simulcast layers."),
    dynacast: bool = typer.Option(False, help="Encode only the simulcast layers viewers take."),
    metrics_port: int = typer.Option(
        0, help="Serve Prometheus metrics on 127.0.0.1:<port>/metrics (0 = off)."
    ),
    stats_interval: float = typer.Option(10.0, help="Seconds between stats log lines."),
    rpc_file_paths: bool = typer.Option(
        False,
        "--rpc-file-paths",
        help="Let any room participant switch to files on this machine over the RPC.",
    ),
    viewer_control: bool = typer.Option(
        False,
        "--viewer-control",
        help="Let participants holding viewer tokens switch the background over the RPC.",
    ),
) -> None:
    """Composite one avatar in one room until Ctrl-C (LiveKit from GREENROOM_* settings)."""
    from greenroom.compositor import REGISTRY, Compositor, CompositorOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    target = _Target(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        room,
    )
    try:
        options = CompositorOptions(
            mode=mode,  # type: ignore[arg-type]
            max_bitrate=max_bitrate,
            max_fps=max_fps,
            video_codec=codec,  # type: ignore[arg-type]
            simulcast=simulcast,
            dynacast=dynacast,
            stats_interval=stats_interval,
            rpc_file_paths=rpc_file_paths,
            viewer_control=viewer_control,
        )
    except GreenroomError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=REGISTRY)

    async def run() -> str:
        comp = await Compositor.start(target, avatar, background, options)
        console.print(
            f"compositing {avatar!r} in room {room!r} as {comp.identity!r}; Ctrl-C to stop"
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.ensure_future(stop.wait())
        ender = asyncio.ensure_future(comp.wait_closed())
        await asyncio.wait({stopper, ender}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        with contextlib.suppress(Exception):
            await comp.aclose()
        return comp.closed_reason or "closed"

    try:
        reason = asyncio.run(run())
    except GreenroomError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        _leave(2)
    except Exception as exc:
        console.print(f"[red]error:[/red] could not start the compositor: {exc}")
        _leave(1)
    if reason != "closed":
        console.print(f"[red]compositor ended:[/red] {reason}")
        _leave(1)
    _leave(0)


def _leave(code: int) -> NoReturn:
    """Exit now, without the interpreter's shutdown: there the LiveKit SDK's native threads
    can abort the process ("panic in a function that cannot unwind", exit -6) after a clean
    close, seen once in a loaded test run. Everything the command started is closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def worker(
    max_sessions: int = typer.Option(4, help="Compositors this worker takes before it is full."),
    log_level: str = typer.Option("INFO", help="TRACE, DEBUG, INFO, WARN, ERROR."),
    dev: bool = typer.Option(False, help="Agents development mode (no load limit)."),
    http_port: int = typer.Option(0, help="Health-check port of the worker (0 = any free)."),
    http_host: str = typer.Option("127.0.0.1", help="Address the health check listens on."),
    cpu_full: float = typer.Option(
        0.85, help="CPU use (0..1) at which the worker takes no more sessions; 0: no CPU limit."
    ),
    drain_timeout: int = typer.Option(
        1800, help="On SIGTERM: seconds to let running sessions end before exiting."
    ),
) -> None:
    """Run a LiveKit Agents worker (agent name 'greenroom-compositor', explicit dispatch).

    It takes sessions until it runs --max-sessions or its CPU reaches --cpu-full; SIGTERM
    stops it taking new ones and lets the running ones end (--drain-timeout)."""
    from greenroom.compositor.worker import build_server, run_worker

    settings = get_settings()
    refuse_unsafe_exposure(settings, *livekit_hosts(settings))
    try:
        server = build_server(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret.get_secret_value(),
            max_sessions=max_sessions,
            cpu_full=cpu_full,
            http_port=http_port,
            http_host=http_host,
            drain_timeout=drain_timeout,
        )
    except GreenroomError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    run_worker(server, log_level=log_level, dev=dev)


def register(app: typer.Typer) -> None:
    app.command("compositor")(compositor)
    app.command("worker")(worker)
