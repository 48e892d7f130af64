"""Health (open: probes call it, and it says only ok and the version) and Prometheus
metrics (the API key or ``GREENROOM_METRICS_TOKEN``: series name sessions and identities)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from greenroom import __version__
from greenroom.api.deps import MetricsAuthorized, ServicesDep
from greenroom.api.schemas import ErrorResponse, Health
from greenroom.errors import GreenroomError

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
def healthz(services: ServicesDep) -> Health:
    """Liveness, database included (503 when it does not answer). Nothing else is told."""
    try:
        with services.repo.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise GreenroomError("database unreachable", code="unhealthy", status=503) from exc
    return Health(status="ok", version=__version__)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=MetricsAuthorized,
    responses={
        200: {"content": {"text/plain": {}}},
        401: {"model": ErrorResponse, "description": "Missing or wrong API key / metrics token"},
    },
)
def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: sessions, frames, latency (ours and the compositor's)."""
    body = generate_latest(services.metrics.registry)
    extra = _compositor_registry()
    if extra is not None:
        body += generate_latest(extra)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _compositor_registry() -> CollectorRegistry | None:
    """The compositor's own Prometheus registry, if it keeps one."""
    try:
        import greenroom.compositor as comp
    except ImportError:
        return None
    for name in ("REGISTRY", "registry", "METRICS_REGISTRY"):
        reg = getattr(comp, name, None)
        if isinstance(reg, CollectorRegistry):
            return reg
    return None
