"""``greenroom demo``: everything on one machine, on loopback, in one command.

Starts the LiveKit server (port 7880, or a free one), the Greenroom service (API with the
compositor in-process) under uvicorn, seeds a template and a few generated backgrounds,
starts a session with the built-in avatar that greets you, and prints the viewer URL (and
opens it when there is a browser and a display). The session lives until Ctrl-C, whether or
not a viewer is open: the demo keeps it alive, and the viewer page offers a new session if
one ends. Ctrl-C stops the session, the service and the LiveKit server. A lock in the data
folder stops a second demo from starting beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import secrets
import signal
import sys
import threading
import webbrowser
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import typer
import uvicorn
from PIL import Image
from pydantic import SecretStr
from rich.console import Console

from greenroom.cli.serve import refuse_unsafe_exposure
from greenroom.config import Settings, get_settings
from greenroom.errors import AlreadyRunning, GreenroomError, SetupError
from greenroom.livekit_server import LiveKitServer, ensure_binary, free_port, port_is_free

console = Console()

TEMPLATE_NAME = "Greenroom demo"
GREETING = (
    "Hello! I am the Greenroom demo avatar. My background is replaced on the server, "
    "frame by frame. Pick another one on the right, or type something for me to say."
)
LOCK_NAME = "demo.lock"
KEEP_ALIVE_EVERY = 30.0  # seconds; well inside the template's idle_timeout (300 s)


# ---- the lock ---------------------------------------------------------------------------------


class DemoLock:
    """An exclusive ``flock`` on ``<data dir>/demo.lock`` holding the running demo's facts.

    The kernel drops the lock when the process dies, however it dies, so a stale file never
    blocks a new demo; the JSON inside only tells the second caller where the first one is.
    """

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(self.path, "a+")  # noqa: SIM115 - held for the demo's lifetime
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            info = _read_json(f.read())
            f.close()
            where = f" (pid {info.get('pid')})" if info.get("pid") else ""
            url = info.get("viewer_url") or info.get("home_url")
            hint = f"\nIts viewer: {url}" if url else ""
            raise AlreadyRunning(
                f"A Greenroom demo is already running{where}.{hint}\n"
                "Stop it with Ctrl-C in its terminal first."
            ) from None
        self._file = f
        self.write(pid=os.getpid())

    def write(self, **info: Any) -> None:
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(info))
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._file.close()
            self._file = None


def _read_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- generated backgrounds ----------------------------------------------------------------------


def _studio(w: int, h: int) -> np.ndarray:
    """A soft blue studio wall with a lighter spot behind the presenter."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((x - w * 0.5) / w, (y - h * 0.42) / h)
    light = np.clip(1.0 - d * 1.6, 0, 1)[..., None]
    base = np.array([22, 44, 82], np.float32)
    spot = np.array([92, 140, 196], np.float32)
    return (base + (spot - base) * light).astype(np.uint8)


def _sunset(w: int, h: int) -> np.ndarray:
    """A warm vertical gradient with a low sun."""
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top = np.array([48, 26, 92], np.float32)
    bottom = np.array([250, 140, 60], np.float32)
    img = top + (bottom - top) * t
    img = np.broadcast_to(img, (h, w, 3)).copy()
    y, x = np.mgrid[0:h, 0:w]
    sun = np.hypot(x - w * 0.78, y - h * 0.72) < h * 0.12
    img[sun] = (255, 214, 120)
    return img.astype(np.uint8)


def _office(w: int, h: int) -> np.ndarray:
    """Light wall with window panes: shapes that make a switch obvious."""
    img = np.full((h, w, 3), (214, 208, 196), np.uint8)
    for i in range(3):
        x0 = int(w * (0.06 + i * 0.1))
        img[int(h * 0.12) : int(h * 0.62), x0 : x0 + int(w * 0.08)] = (150, 196, 226)
    img[int(h * 0.78) :, :] = (120, 92, 70)
    return img


BACKGROUNDS = {"Studio": _studio, "Sunset": _sunset, "Office": _office}


def background_png(name: str, w: int = 1280, h: int = 720) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(BACKGROUNDS[name](w, h)).save(buf, format="PNG")
    return buf.getvalue()


# ---- seeding through the API ------------------------------------------------------------------


async def seed(client: httpx.AsyncClient) -> str:
    """Make sure the demo backgrounds and template exist; return the template id."""
    r = await client.get("/v1/backgrounds")
    r.raise_for_status()
    have = {b["name"]: b["id"] for b in r.json()["backgrounds"]}
    for name in BACKGROUNDS:
        if name not in have:
            files = {"file": (f"{name.lower()}.png", background_png(name), "image/png")}
            r = await client.post("/v1/backgrounds", files=files, data={"name": name})
            _check(r, f"uploading the {name} background")
            have[name] = r.json()["id"]
    r = await client.get("/v1/templates")
    r.raise_for_status()
    for tpl in r.json()["templates"]:
        if tpl["name"] == TEMPLATE_NAME:
            return str(tpl["id"])
    body = {"name": TEMPLATE_NAME, "provider": "local", "background": have["Studio"]}
    r = await client.post("/v1/templates", json=body)
    _check(r, "creating the demo template")
    return str(r.json()["id"])


def _check(r: httpx.Response, what: str) -> None:
    if r.is_success:
        return
    try:
        message = r.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = r.text[:300]
    raise GreenroomError(f"{what} failed ({r.status_code}): {message}")


# ---- running ----------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _log_to_file(path: Path) -> Path:
    """Send the service's logs (and the LiveKit SDK's) to a file, so the terminal stays readable."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def _can_open_browser() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


async def _run(
    settings: Settings, *, api_port: int, livekit_port: int | None, seconds: float, open_: bool
) -> None:
    lock = DemoLock(settings.data_dir)
    lock.acquire()
    log_path = _log_to_file(settings.data_dir / "demo.log")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lk: LiveKitServer | None = None
    server: _Server | None = None
    serving: asyncio.Task[None] | None = None
    try:
        binary = ensure_binary(settings.cache_dir, log=sys.stderr)
        console.print("Starting the LiveKit server…")
        lk = LiveKitServer.start(
            port=livekit_port,
            binary=binary,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret.get_secret_value(),
            log_path=settings.data_dir / "livekit.log",
        )
        if not api_port:
            api_port = settings.api_port if port_is_free(settings.api_port) else free_port()
        base = f"http://127.0.0.1:{api_port}"
        key = settings.api_key.get_secret_value() if settings.api_key else secrets.token_urlsafe(24)
        settings = settings.model_copy(
            update={
                "livekit_url": lk.url,
                "livekit_public_url": None,
                "api_host": "127.0.0.1",
                "api_port": api_port,
                "public_base_url": base,
                "api_key": SecretStr(key),
                "viewer_can_restart": True,  # an ended session's page offers a new one
            }
        )
        from greenroom.api.app import create_app

        app = create_app(settings)
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving
                raise SetupError(f"the Greenroom service could not listen on {base}")
            await asyncio.sleep(0.05)
        lock.write(pid=os.getpid(), home_url=f"{base}/", livekit_url=lk.url)

        console.print("Seeding the demo template and backgrounds, starting the avatar…")
        console.file.flush()
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            template_id = await seed(client)
            r = await client.post(
                "/v2/streaming/sessions", json={"template_id": template_id, "text": GREETING}
            )
            _check(r, "starting the demo session")
            started = r.json()
        viewer_url = started["viewer_url"]
        lock.write(pid=os.getpid(), home_url=f"{base}/", viewer_url=viewer_url)

        console.print()
        console.print("[bold green]Greenroom demo is running.[/bold green]")
        console.print(f"  Viewer:   [link={viewer_url}]{viewer_url}[/link]", soft_wrap=True)
        console.print(f"  Sessions: {base}/#key={key}", soft_wrap=True)
        console.print(f"  API:      {base}/docs  (API key: {key})", soft_wrap=True)
        console.print(f"  LiveKit:  {lk.url} (key {settings.livekit_api_key})")
        console.print(f"  Logs:     {log_path} and {lk.log_path}")
        console.print("Press Ctrl-C to stop.")
        console.file.flush()  # piped output (| tee, a test) sees the URL now, not at exit
        if open_ and _can_open_browser():
            webbrowser.open(viewer_url)

        waiter = asyncio.create_task(stop.wait())
        keeper = asyncio.create_task(_keep_alive(base, headers))
        timeout = seconds if seconds > 0 else None
        await asyncio.wait({waiter, serving}, timeout=timeout, return_when="FIRST_COMPLETED")
        waiter.cancel()
        keeper.cancel()
        console.print("Stopping…")
    finally:
        if server is not None and serving is not None:
            server.should_exit = True  # lifespan shutdown stops the session (avatar, compositor)
            with contextlib.suppress(Exception):
                await serving
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if lk is not None:
            lk.stop()
        lock.release()


async def _keep_alive(base: str, headers: dict[str, str]) -> None:
    """Keep every running session of the demo alive (the first and any the viewer started),
    so it lasts until Ctrl-C however long nobody types."""
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        while True:
            await asyncio.sleep(KEEP_ALIVE_EVERY)
            try:
                r = await client.get("/v2/streaming/sessions", params={"status": "started"})
                for s in r.json()["sessions"] if r.is_success else []:
                    await client.post(f"/v2/streaming/sessions/{s['session_id']}/keep_alive")
            except (httpx.HTTPError, ValueError, KeyError) as exc:  # the next round tries again
                logging.getLogger("greenroom.demo").warning("keep-alive failed: %r", exc)


def demo(
    port: int = typer.Option(0, help="API port; 0: 8080 if free, else any free port."),
    livekit_port: int = typer.Option(7880, help="LiveKit port; taken or 0: a free port is picked."),
    seconds: float = typer.Option(0, help="Stop after this many seconds (0: until Ctrl-C)."),
    open_browser: bool = typer.Option(
        True, "--open/--no-open", help="Open the viewer in a browser when a display exists."
    ),
) -> None:
    """Run LiveKit, the service and a built-in avatar session; print the viewer URL."""
    settings = get_settings()
    refuse_unsafe_exposure(settings, "127.0.0.1")  # the API and LiveKit bind only loopback
    # 0 or a taken port: any free port (LiveKitServer.start(port=None) would try 7880 first).
    lk_port = livekit_port if livekit_port and port_is_free(livekit_port) else free_port()
    try:
        _run_to_end(
            _run(settings, api_port=port, livekit_port=lk_port, seconds=seconds, open_=open_browser)
        )
    except GreenroomError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass
    console.print("Demo stopped.")
    _exit_now_if_threads_linger()


def _run_to_end(coro: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` without its final wait for the default executor's threads.

    A thread may still be compiling kernels (the service's warm-up) or rendering a frame;
    it cannot be cancelled, and waiting for it would make Ctrl-C take half a minute.
    """
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _exit_now_if_threads_linger() -> None:
    """Exit at once when only computing threads remain (everything started is closed)."""
    main = threading.main_thread()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not main):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
