"""Background control: parse what the RPC door receives and map errors to ``rtc.RpcError``.

The RPC payload is JSON::

    {"background": "<spec string>" | {BackgroundSpec fields}, "transition": 0.3}

``transition`` is optional (seconds). Errors reach the caller as ``rtc.RpcError`` with
code :data:`RPC_INVALID_INPUT` (or :data:`RPC_INTERNAL`), a message naming the problem and
``data`` = ``{"code", "message", "field"}`` (the API's error shape).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from livekit import rtc
from pydantic import ValidationError

from greenroom.backgrounds import BackgroundSpec
from greenroom.compositor.options import check_transition
from greenroom.errors import GreenroomError, InvalidInput

RPC_INVALID_INPUT = 2422
"""RpcError code for a payload we cannot use (1001-1999 are reserved by LiveKit)."""
RPC_INTERNAL = 2500
"""RpcError code for a failure on our side."""

_MAX_PAYLOAD = 8192


def coerce_background(value: object) -> BackgroundSpec:
    """A ``BackgroundSpec`` from a spec, a spec string or a dict of its fields."""
    if isinstance(value, BackgroundSpec):
        return value
    if isinstance(value, str):
        return BackgroundSpec.parse(value)
    if isinstance(value, dict):
        try:
            return BackgroundSpec.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()))
            field = f"background.{loc}" if loc else "background"
            raise InvalidInput(f"{field}: {err.get('msg', 'invalid')}", field=field) from None
    raise InvalidInput(
        "background must be a spec string such as '#00b140' or an object of spec fields",
        field="background",
    )


def parse_set_background(
    payload: str, resolve: Callable[[object], BackgroundSpec] = coerce_background
) -> tuple[BackgroundSpec, float | None]:
    """Parse an RPC payload into ``(spec, transition or None for the default)``.

    ``resolve`` turns the ``background`` value into a spec; the caller decides what a room
    participant may name (the service maps library ids and refuses file paths).

    Raises:
        InvalidInput: the payload is not JSON, lacks ``background``, or a value is wrong;
            ``field`` names the culprit.
    """
    if len(payload) > _MAX_PAYLOAD:
        raise InvalidInput(f"payload is larger than {_MAX_PAYLOAD} bytes", field="payload")
    try:
        data: Any = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"payload is not JSON ({exc.msg} at position {exc.pos}); expected "
            '{"background": "<spec>", "transition": 0.3}',
            field="payload",
        ) from None
    if not isinstance(data, dict) or "background" not in data:
        raise InvalidInput(
            'payload must be a JSON object with a "background" key', field="background"
        )
    unknown = set(data) - {"background", "transition"}
    if unknown:
        raise InvalidInput(
            f"unknown payload keys: {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
        )
    spec = resolve(data["background"])
    transition = data.get("transition")
    return spec, None if transition is None else check_transition(transition)


def to_rpc_error(exc: BaseException) -> rtc.RpcError:
    """Translate an exception into the ``rtc.RpcError`` the caller receives."""
    if isinstance(exc, rtc.RpcError):
        return exc
    if isinstance(exc, InvalidInput):
        message = exc.message
        if exc.field and not message.startswith(exc.field):
            message = f"{exc.field}: {message}"
        body = {"code": exc.code, "message": message, "field": exc.field}
        return rtc.RpcError(RPC_INVALID_INPUT, message, json.dumps(body))
    if isinstance(exc, GreenroomError):
        body = {"code": exc.code, "message": exc.message, "field": None}
        return rtc.RpcError(RPC_INTERNAL, exc.message, json.dumps(body))
    body = {"code": "internal", "message": "background switch failed", "field": None}
    return rtc.RpcError(RPC_INTERNAL, "background switch failed", json.dumps(body))
