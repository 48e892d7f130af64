"""The ``greenroom`` command. Each command group lives in its own module here."""

from __future__ import annotations

import typer

from greenroom.cli import avatar as _avatar
from greenroom.cli import compositor as _compositor
from greenroom.cli import demo as _demo
from greenroom.cli import emulate as _emulate
from greenroom.cli import key as _key
from greenroom.cli import serve as _serve
from greenroom.cli import server as _server
from greenroom.errors import ConfigError

app = typer.Typer(
    name="greenroom",
    help="Server-side backgrounds for real-time AI avatars in LiveKit rooms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

_avatar.register(app)
_server.register(app)
_demo.register(app)
_key.register(app)
_emulate.register(app)
_serve.register(app)
_compositor.register(app)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # a bad GREENROOM_* variable: say which, no traceback
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None
