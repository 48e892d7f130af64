"""The app factory: ``create_app(settings)`` builds a fresh, self-contained API."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.middleware.base import RequestResponseEndpoint

from greenroom import __version__
from greenroom.api import errors
from greenroom.api.deps import Services
from greenroom.api.limits import BodyLimit
from greenroom.api.metrics import Metrics
from greenroom.api.routes import backgrounds, health, sessions, templates
from greenroom.api.services.sessions import SessionManager
from greenroom.api.services.templates import TemplateService
from greenroom.backgrounds.library import BackgroundLibrary, LibraryLimits
from greenroom.config import Settings
from greenroom.store import Repo, connect, migrate

log = logging.getLogger("greenroom.api")
http_log = logging.getLogger("greenroom.http")

DESCRIPTION = """\
Server-side background replacement for real-time AI avatars in LiveKit rooms.

Every route except `/healthz` needs the API key, as
`Authorization: Bearer <key>` or `X-Api-Key: <key>` (`/metrics` also takes
`GREENROOM_METRICS_TOKEN`). Errors always look like
`{"error": {"code": "...", "message": "...", "field": "..."}}`.
"""


def create_app(
    settings: Settings,
    *,
    library_limits: LibraryLimits | None = None,
    warm_up: bool = True,
) -> FastAPI:
    """A new app with its own database engine (migrated now), library and session manager.

    If ``settings.api_key`` is unset a random key is generated; read it from
    ``app.state.services.api_key`` (``greenroom serve`` prints it once). ``warm_up`` loads
    the frame kernels in the background at start, so the first session is not the slow one.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = connect(settings.resolved_database_url)
    migrate(engine)
    repo = Repo(engine)
    library = BackgroundLibrary(
        settings.data_dir / "backgrounds", library_limits or library_limits_from(settings)
    )
    metrics = Metrics()
    base_url = settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}"
    manager = SessionManager(settings, repo, library, metrics, public_base_url=base_url)
    metrics.watch(lambda: manager.live)
    api_key = settings.api_key.get_secret_value() if settings.api_key else secrets.token_urlsafe(24)
    services = Services(
        settings=settings,
        api_key=api_key,
        repo=repo,
        library=library,
        templates=TemplateService(repo),
        sessions=manager,
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        swept = library.sweep_inbox()
        if swept:
            log.info("removed %d unfinished upload(s) left by an earlier run", swept)
        warming = asyncio.create_task(manager.warm_up()) if warm_up else None
        await manager.leases.start()  # session leases: heartbeat and sweep (leases.py)
        fixed = await manager.reconcile()
        if fixed:
            log.info("reconciled %d session(s) left open by an earlier run", len(fixed))
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            await manager.aclose()
            engine.dispose()

    app = FastAPI(
        title="Greenroom",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.services = services
    app.state.settings = settings
    errors.install(app)

    @app.middleware("http")
    async def _observe(request: Request, call_next: RequestResponseEndpoint) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            dt = time.perf_counter() - t0
            metrics.requests.labels(request.method, path, str(status)).inc()
            metrics.request_seconds.labels(request.method, path).observe(dt)
            http_log.info(
                "%s %s %d %.1f ms",
                request.method,
                request.url.path,
                status,
                dt * 1000,
                extra={
                    "method": request.method,
                    "route": path,
                    "status": status,
                    "ms": round(dt * 1000, 1),
                },
            )

    app.add_middleware(BodyLimit)
    app.include_router(health.router)
    app.include_router(templates.router)
    app.include_router(backgrounds.router)
    app.include_router(sessions.router)
    _include_viewer(app)
    return app


def library_limits_from(settings: Settings) -> LibraryLimits:
    """The upload limits and the library quota, from ``GREENROOM_UPLOAD_*``/``LIBRARY_*``."""
    return LibraryLimits(
        max_bytes=settings.upload_max_bytes,
        max_pixels=settings.upload_max_pixels,
        max_video_pixels=settings.upload_max_video_pixels,
        max_video_seconds=settings.upload_max_video_seconds,
        max_items=settings.library_max_items,
        max_total_bytes=settings.library_max_bytes,
    )


def _include_viewer(app: FastAPI) -> None:
    """Mount the viewer pages when ``greenroom.web`` provides ``router`` (public: the page
    carries the session's scoped token in its URL fragment, not the API key)."""
    from fastapi import APIRouter

    for name in ("greenroom.web.router", "greenroom.web"):
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        module = importlib.import_module(name)
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            app.include_router(router)
            return
