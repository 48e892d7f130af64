"""``greenroom emulate liveavatar|heygen``: serve a vendor emulator on loopback.

The emulator's avatar is Greenroom's built-in one, publishing into the LiveKit server from
``GREENROOM_LIVEKIT_*`` (LiveAvatar LITE joins whatever server your request names). Failure
injection comes from ``GREENROOM_EMULATOR_*`` (see :mod:`greenroom.emulators.config`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)

DEFAULT_PORTS = {"liveavatar": 8091, "heygen": 8092}


class Vendor(StrEnum):
    liveavatar = "liveavatar"
    heygen = "heygen"


def emulate(
    vendor: Annotated[Vendor, typer.Argument(help="Which API to emulate.")],
    port: Annotated[
        int, typer.Option(help="Port (default 8091 for liveavatar, 8092 for heygen).")
    ] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    api_key: Annotated[
        str | None,
        typer.Option(help="Accept only this account key (default: any non-empty key)."),
    ] = None,
) -> None:
    """Run a LiveAvatar or HeyGen Streaming API emulator backed by the built-in avatar."""
    import uvicorn

    from greenroom.config import get_settings
    from greenroom.emulators.backend import LocalBackend
    from greenroom.emulators.config import EmulatorConfig, LiveKitAccess

    settings = get_settings()
    port = port or DEFAULT_PORTS[vendor.value]
    livekit = LiveKitAccess(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
    )
    try:
        config = EmulatorConfig.from_env(livekit)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if api_key:
        config.api_key = api_key
    config.public_url = config.public_url or f"http://{host}:{port}"
    if vendor is Vendor.liveavatar:
        from greenroom.emulators.liveavatar import create_app
    else:
        from greenroom.emulators.heygen import create_app
    app = create_app(config, LocalBackend())
    env = vendor.value.upper()
    console.print(
        f"{vendor.value} emulator on http://{host}:{port} (LiveKit {settings.livekit_url}).\n"
        f"Point Greenroom at it:  GREENROOM_{env}_BASE_URL=http://{host}:{port} "
        f"GREENROOM_{env}_API_KEY={api_key or 'any-non-empty-key'}"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("emulate")(emulate)
