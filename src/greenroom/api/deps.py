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
from greenroom.errors import GreenroomError
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


class Unauthorized(GreenroomError):
    code = "unauthorized"
    status = 401


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_header = APIKeyHeader(name="X-Api-Key", auto_error=False, description="`X-Api-Key: <API key>`")


async def require_api_key(
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> None:
    """Accept the key from either header; compare in constant time."""
    given = bearer.credentials if bearer is not None else header
    if not given:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"
        )
    if not hmac.compare_digest(given.encode(), services.api_key.encode()):
        raise Unauthorized("invalid API key")


Authorized = [Depends(require_api_key)]
