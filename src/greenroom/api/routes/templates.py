"""Templates: avatar provider + avatar + voice + background + keying, saved by name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from greenroom.api.deps import Authorized, ServicesDep
from greenroom.api.schemas import (
    ErrorResponse,
    TemplateCreate,
    TemplateList,
    TemplatePublic,
    TemplateUpdate,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown template"},
    409: {"model": ErrorResponse, "description": "Name taken"},
    422: {"model": ErrorResponse, "description": "Invalid field"},
}

router = APIRouter(
    prefix="/v1/templates", tags=["templates"], dependencies=Authorized, responses=ERRORS
)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_template(body: TemplateCreate, services: ServicesDep) -> TemplatePublic:
    """Save a new template."""
    row = services.templates.create(body.model_dump())
    return TemplatePublic.model_validate(row)


@router.get("")
def list_templates(services: ServicesDep) -> TemplateList:
    """All templates, oldest first."""
    return TemplateList(
        templates=[TemplatePublic.model_validate(r) for r in services.templates.list()]
    )


@router.get("/{template_id}")
def get_template(template_id: str, services: ServicesDep) -> TemplatePublic:
    """One template."""
    return TemplatePublic.model_validate(services.templates.get(template_id))


@router.patch("/{template_id}")
def update_template(
    template_id: str, body: TemplateUpdate, services: ServicesDep
) -> TemplatePublic:
    """Change the fields given; running sessions keep what they started with."""
    row = services.templates.update(template_id, body.model_dump(exclude_unset=True))
    return TemplatePublic.model_validate(row)


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_template(template_id: str, services: ServicesDep) -> Response:
    """Delete a template; sessions already started from it keep running."""
    services.templates.delete(template_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
