"""``greenroom serve``: the HTTP API (templates, background library, sessions) with uvicorn."""

from __future__ import annotations

import secrets
import sys

import typer
from pydantic import SecretStr
from rich.console import Console

from greenroom.config import Settings, UnsafeExposure, check_exposure, get_settings, url_host
from greenroom.errors import GreenroomError

console = Console(stderr=True)


def refuse_unsafe_exposure(settings: Settings, *hosts: str) -> None:
    """Exit with status 2 when the development LiveKit secret would be exposed on ``hosts``
    (see :func:`greenroom.config.check_exposure`); ``serve``, ``worker`` and ``demo`` call it."""
    try:
        check_exposure(settings, *hosts)
    except UnsafeExposure as exc:
        console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(2) from None


def livekit_hosts(settings: Settings) -> list[str]:
    """The LiveKit hosts this process and its clients use."""
    hosts = {url_host(settings.livekit_url), url_host(settings.client_livekit_url)}
    return sorted(h for h in hosts if h)


def serve(
    host: str = typer.Option(None, help="Address to bind (default GREENROOM_API_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default GREENROOM_API_PORT, 8080)."),
    log_format: str = typer.Option("text", help="'json' for one JSON object per line, or 'text'."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run the Greenroom API. Needs a LiveKit server (GREENROOM_LIVEKIT_URL) for sessions.

    Every route but /healthz needs GREENROOM_API_KEY (/metrics also takes
    GREENROOM_METRICS_TOKEN). If it is unset, a key is generated for this run and printed once.
    A non-loopback --host needs a real GREENROOM_LIVEKIT_API_SECRET (exit status 2 otherwise).
    """
    import uvicorn

    from greenroom.api.app import create_app
    from greenroom.api.logs import configure

    if log_format not in ("json", "text"):
        raise typer.BadParameter("use 'json' or 'text'", param_hint="--log-format")
    configure(log_format, log_level)
    settings = get_settings()
    update: dict[str, object] = {}
    if host:
        update["api_host"] = host
    if port:
        update["api_port"] = port
    generated = settings.api_key is None
    if generated:
        update["api_key"] = SecretStr(secrets.token_urlsafe(24))
    settings = settings.model_copy(update=update)
    refuse_unsafe_exposure(settings, settings.api_host, *livekit_hosts(settings))
    try:
        app = create_app(settings)
    except GreenroomError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    base = settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}"
    console.print(f"Greenroom API on {base} (docs: {base}/docs); LiveKit {settings.livekit_url}")
    if generated:
        assert settings.api_key is not None
        # printed once, to the terminal only; never logged
        console.print(
            "GREENROOM_API_KEY is not set; this run's API key is: "
            f"[bold]{settings.api_key.get_secret_value()}[/bold]",
            soft_wrap=True,
        )
    sys.stderr.flush()
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=15,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
