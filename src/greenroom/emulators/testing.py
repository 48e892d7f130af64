"""Run an emulator inside your own asyncio program or test, on a free loopback port::

from greenroom.emulators import liveavatar
from greenroom.emulators.backend import LocalBackend
from greenroom.emulators.config import EmulatorConfig
from greenroom.emulators.testing import serve

async with serve(liveavatar.create_app(EmulatorConfig(livekit=...), LocalBackend())) as url:
    ...  # point GREENROOM_LIVEAVATAR_BASE_URL (or a vendor SDK) at url
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import uvicorn
from uvicorn._types import ASGIApplication

from greenroom.livekit_server import free_port


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApplication, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in the running event loop; yields ``http://host:port``."""
    port = port or free_port(host)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the emulator server exited before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("the emulator server did not start within 10 s")
        await asyncio.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
