"""``greenroom livekit-server`` and ``greenroom setup``: the real LiveKit server, installed and run."""

from __future__ import annotations

import secrets
import signal
import sys
import time

import typer
from rich.console import Console

from greenroom.config import DEV_LIVEKIT_SECRET, get_settings
from greenroom.errors import SetupError
from greenroom.livekit_server import LiveKitServer, ensure_binary

console = Console(stderr=True)


def livekit_server(
    port: int = typer.Option(7880, help="HTTP/WebSocket port; 0 picks a free one."),
) -> None:
    """Run the LiveKit server on loopback in the foreground (Ctrl-C stops it)."""
    settings = get_settings()
    try:
        binary = ensure_binary(settings.cache_dir, log=sys.stderr)
        server = LiveKitServer.start(
            port=port or None,
            binary=binary,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret.get_secret_value(),
        )
    except SetupError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    console.print(
        f"LiveKit server {server.url} (key {settings.livekit_api_key}); "
        f"log: {server.log_path}. Ctrl-C to stop."
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and server.process and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def setup(quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors.")) -> None:
    """Install what Greenroom needs at run time (each step is skipped when already done)."""
    settings = get_settings()
    try:
        path = ensure_binary(settings.cache_dir, log=sys.stderr)
    except SetupError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    if not quiet:
        console.print(f"LiveKit server: {path}")
    try:
        from greenroom.keying.selfie_model import ensure_model

        model = ensure_model(settings.cache_dir)
    except SetupError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    if not quiet:
        console.print(f"Segmentation model: {model}")
        if settings.livekit_api_secret.get_secret_value() in ("", DEV_LIVEKIT_SECRET):
            console.print(
                "LiveKit credentials: the development defaults, fine on 127.0.0.1 only. Before "
                "binding any other address set GREENROOM_LIVEKIT_API_SECRET (`greenroom secret` "
                "prints a fresh one) and give the LiveKit server the same key pair."
            )


def secret() -> None:
    """Print a fresh random secret (256 bits, URL-safe) for GREENROOM_LIVEKIT_API_SECRET."""
    print(secrets.token_urlsafe(32))


def register(app: typer.Typer) -> None:
    app.command("livekit-server")(livekit_server)
    app.command("setup")(setup)
    app.command("secret")(secret)
