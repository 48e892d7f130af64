"""``greenroom avatar``: run a built-in avatar in a room of the configured LiveKit server.

greenroom avatar local --room demo --say "Hello there"
greenroom avatar file presenter.mp4 --room demo
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from greenroom.config import get_settings
from greenroom.errors import GreenroomError

if TYPE_CHECKING:
    from greenroom.avatars import RoomTarget
    from greenroom.avatars.local._room import RoomAvatar

console = Console(stderr=True)
avatar_app = typer.Typer(help="Run a built-in avatar (a room participant) until Ctrl-C.")


async def _run(
    start: Callable[[], Awaitable[RoomAvatar]], say: str | None, talk: bool, duration: float | None
) -> None:
    avatar = await start()
    console.print(
        f"[green]{avatar.provider} avatar[/green] {avatar.identity!r} is in room "
        f"{avatar.target.room!r} at {avatar.target.url} "
        f"({avatar.width}x{avatar.height} @ {avatar.fps:g} fps). Ctrl-C to leave."
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if say:
            await avatar.speak(say, mode="talk" if talk else "repeat")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await avatar.aclose()
        console.print("left the room")


def _target(room: str) -> RoomTarget:
    from greenroom.avatars import RoomTarget

    if not room.strip():
        raise typer.BadParameter("give a room name", param_hint="--room")
    return RoomTarget.from_settings(get_settings(), room)


def _main(coro: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(coro)
    except GreenroomError as exc:
        where = f" ({exc.field})" if getattr(exc, "field", None) else ""
        console.print(f"[red]error{where}:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    except ConnectionError as exc:
        console.print(f"[red]error:[/red] cannot reach the LiveKit server: {exc}")
        raise typer.Exit(1) from exc


@avatar_app.command("local")
def local(
    room: str = typer.Option(..., "--room", help="Room to join."),
    identity: str = typer.Option(None, help="Participant identity (default local-avatar-XXXXXX)."),
    say: str = typer.Option(None, "--say", help="Text to speak once joined."),
    talk: bool = typer.Option(False, "--talk", help="Answer --say with a short reply instead."),
    voice: str = typer.Option(None, help="espeak-ng voice, e.g. en-us or en+f3."),
    quality: str = typer.Option("high", help="high 1280x720, medium 960x540, low 640x360."),
    fps: float = typer.Option(30.0, help="Frames per second."),
    duration: float = typer.Option(None, help="Leave after this many seconds."),
) -> None:
    """The built-in presenter on a green screen, speaking with espeak-ng."""
    from greenroom.avatars import get_provider

    async def start() -> RoomAvatar:
        return await get_provider("local").start(  # type: ignore[return-value]
            _target(room), identity=identity, voice=voice, quality=quality, fps=fps
        )

    _main(_run(start, say, talk, duration))


@avatar_app.command("file")
def file(
    clip: Annotated[Path, typer.Argument(help="A green-screen video file (looped, with sound).")],
    room: str = typer.Option(..., "--room", help="Room to join."),
    identity: str = typer.Option(None, help="Participant identity (default file-avatar-XXXXXX)."),
    say: str = typer.Option(None, "--say", help="Text to speak over the clip once joined."),
    duration: float = typer.Option(None, help="Leave after this many seconds."),
) -> None:
    """Loop a video file into the room at its own size and frame rate."""
    from greenroom.avatars import get_provider

    async def start() -> RoomAvatar:
        return await get_provider("file").start(  # type: ignore[return-value]
            _target(room), avatar_id=str(clip), identity=identity
        )

    _main(_run(start, say, False, duration))


def register(app: typer.Typer) -> None:
    app.add_typer(avatar_app, name="avatar")
