"""The background library: upload images and videos, list, fetch, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import FileResponse

from greenroom.api.deps import Authorized, Services, ServicesDep
from greenroom.api.schemas import BackgroundList, BackgroundPublic, ErrorResponse
from greenroom.api.services.uploads import add_to_library
from greenroom.errors import Conflict
from greenroom.store.models import BackgroundRow

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown background"},
}

router = APIRouter(
    prefix="/v1/backgrounds", tags=["backgrounds"], dependencies=Authorized, responses=ERRORS
)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            }
        },
    }
}


def _public(row: BackgroundRow) -> BackgroundPublic:
    return BackgroundPublic(
        id=row.id,
        name=row.name,
        kind=row.kind,  # type: ignore[arg-type]
        format=row.format,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        width=row.width,
        height=row.height,
        duration_s=row.duration_s,
        created_at=row.created_at,
        url=f"/v1/backgrounds/{row.id}/file",
        thumbnail_url=f"/v1/backgrounds/{row.id}/thumbnail.jpg",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_BODY,
    responses={
        413: {"model": ErrorResponse, "description": "File or pixel count over the limit"},
        422: {"model": ErrorResponse, "description": "Not a decodable image or video"},
    },
)
async def upload_background(request: Request, services: ServicesDep) -> BackgroundPublic:
    """Upload an image (PNG, JPEG, WebP, GIF, BMP) or video (MP4, WebM) as multipart field `file`."""
    row = await add_to_library(
        services.library,
        services.repo,
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
    )
    return _public(row)


@router.get("")
def list_backgrounds(services: ServicesDep) -> BackgroundList:
    """Everything in the library, oldest first."""
    return BackgroundList(backgrounds=[_public(r) for r in services.repo.list_backgrounds()])


@router.get("/{background_id}")
def get_background(background_id: str, services: ServicesDep) -> BackgroundPublic:
    """One library item."""
    return _public(services.repo.get_background(background_id))


@router.get(
    "/{background_id}/thumbnail.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_thumbnail(background_id: str, services: ServicesDep) -> FileResponse:
    """A JPEG preview, at most 320x180."""
    row = services.repo.get_background(background_id)
    return FileResponse(services.library.path(row.thumbnail_name), media_type="image/jpeg")


@router.get(
    "/{background_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}, "video/*": {}}}},
)
def get_file(background_id: str, services: ServicesDep) -> FileResponse:
    """The stored file."""
    row = services.repo.get_background(background_id)
    return FileResponse(services.library.path(row.stored_name), media_type=row.content_type)


@router.delete(
    "/{background_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"model": ErrorResponse, "description": "In use"}},
)
def delete_background(background_id: str, services: ServicesDep) -> Response:
    """Delete a library item that no template or running session uses."""
    row = services.repo.get_background(background_id)
    _check_unused(services, row.id)
    services.repo.delete_background(row.id)
    services.library.remove(row.stored_name, row.thumbnail_name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _check_unused(services: Services, background_id: str) -> None:
    users = [t.name for t in services.repo.templates_using_background(background_id)]
    if users:
        raise Conflict(
            f"background {background_id} is used by template(s) {', '.join(users)}; "
            "change them first"
        )
    if background_id in services.sessions.backgrounds_in_use():
        raise Conflict(f"background {background_id} is on screen in a running session")
