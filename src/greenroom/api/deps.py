"""Dependencies routes ask for: the app's services and the API-key check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from greenroom.api.metrics import Metrics
from greenroom.api.services.sessions import SessionManager
from greenroom.api.services.templates import TemplateService
from greenroom.backgrounds.library import BackgroundLibrary
from greenroom.config import Settings
from greenroom.errors import Unauthorized
from greenroom.store import Repo


@dataclass
class Services:
    """Everything one app instance owns."""

    settings: Settings
    api_key: str
    repo: Repo
    library: BackgroundLibrary
    templates: TemplateService
    sessions: SessionManager
    metrics: Metrics


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_header = APIKeyHeader(name="X-Api-Key", auto_error=False, description="`X-Api-Key: <API key>`")


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
HeaderDep = Annotated[str | None, Depends(_header)]


def _matches(given: str, *accepted: str) -> bool:
    """Constant-time comparison against every accepted value (no early exit on a match)."""
    hits = [hmac.compare_digest(given.encode(), a.encode()) for a in accepted]
    return any(hits)


async def require_api_key(services: ServicesDep, bearer: BearerDep, header: HeaderDep) -> None:
    """Accept the key from either header; compare in constant time."""
    given = bearer.credentials if bearer is not None else header
    if not given:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"
        )
    if not _matches(given, services.api_key):
        raise Unauthorized("invalid API key")


async def require_metrics_access(
    services: ServicesDep, bearer: BearerDep, header: HeaderDep
) -> None:
    """``/metrics`` names sessions and identities: the API key or the metrics token, unless
    ``GREENROOM_METRICS_PUBLIC`` is set."""
    settings = services.settings
    if settings.metrics_public:
        return
    given = bearer.credentials if bearer is not None else header
    if not given:
        raise Unauthorized(
            "missing credential: send the API key or the metrics token as "
            "'Authorization: Bearer <token>'"
        )
    accepted = [services.api_key]
    if settings.metrics_token is not None:
        accepted.append(settings.metrics_token.get_secret_value())
    if not _matches(given, *accepted):
        raise Unauthorized("invalid credential for /metrics")


Authorized = [Depends(require_api_key)]
MetricsAuthorized = [Depends(require_metrics_access)]
