"""Background control: the Python method and the RPC door, and the attributes that mirror them.

The RPC payload is JSON::

    {"background": "<spec string>" | {BackgroundSpec fields}, "transition": 0.3}

``transition`` is optional (seconds). Errors reach the caller as ``rtc.RpcError`` with
code :data:`RPC_INVALID_INPUT` (or :data:`RPC_FORBIDDEN`, :data:`RPC_RATE_LIMITED`,
:data:`RPC_INTERNAL`), a message naming the problem and ``data`` =
``{"code", "message", "field"}`` (the API's error shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from livekit import rtc
from pydantic import ValidationError

from greenroom.backgrounds import BackgroundSpec, Scene
from greenroom.backgrounds.spec import hex_color
from greenroom.compositor.options import (
    ATTR_AVATAR,
    ATTR_BACKGROUND,
    ATTR_KEY_COLOR,
    ATTR_KEYER,
    ATTR_PUBLISH_ON_BEHALF,
    ATTR_ROLE,
    ROLE_COMPOSITOR,
    RPC_SET_BACKGROUND,
    CompositorOptions,
    check_transition,
)
from greenroom.compositor.video import within
from greenroom.errors import GreenroomError, InvalidInput

logger = logging.getLogger("greenroom.compositor")

RPC_INVALID_INPUT = 2422
"""RpcError code for a payload we cannot use (1001-1999 are reserved by LiveKit)."""
RPC_FORBIDDEN = 2403
"""RpcError code for a caller that may not change the background (a viewer token)."""
RPC_RATE_LIMITED = 2429
"""RpcError code for a caller over ``CompositorOptions.rpc_rate``."""
RPC_INTERNAL = 2500
"""RpcError code for a failure on our side."""

MAX_PAYLOAD = 8192
"""Default largest RPC payload, bytes of UTF-8 (``CompositorOptions.rpc_max_payload``)."""
ATTRIBUTE_TIMEOUT = 5.0

BackgroundResolver = Callable[[object], BackgroundSpec]
"""Maps an RPC ``background`` value to a spec; raises ``InvalidInput`` to refuse it."""


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
    payload: str,
    resolve: Callable[[object], BackgroundSpec] = coerce_background,
    max_bytes: int = MAX_PAYLOAD,
) -> tuple[BackgroundSpec, float | None]:
    """Parse an RPC payload into ``(spec, transition or None for the default)``.

    ``resolve`` turns the ``background`` value into a spec; the caller decides what a room
    participant may name (the service maps library ids and refuses file paths).

    Raises:
        InvalidInput: the payload is not JSON, lacks ``background``, or a value is wrong;
            ``field`` names the culprit.
    """
    size = len(payload.encode())
    if size > max_bytes:
        raise InvalidInput(
            f"payload is {size} bytes; the limit is {max_bytes} bytes", field="payload"
        )
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


class CallerRefused(GreenroomError):
    """The caller may not switch the background now; ``rpc_code`` says why."""

    def __init__(self, message: str, *, code: str, rpc_code: int) -> None:
        super().__init__(message, code=code, status=403 if rpc_code == RPC_FORBIDDEN else 429)
        self.rpc_code = rpc_code


class RateLimiter:
    """At most ``count`` calls per caller in any ``seconds`` window (a sliding window)."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count = count
        self.seconds = seconds
        self._calls: dict[str, deque[float]] = {}

    def retry_after(self, caller: str, now: float) -> float:
        """0 and the call counted, or the seconds until ``caller`` may call again."""
        for who in [w for w, q in self._calls.items() if q[-1] <= now - self.seconds]:
            del self._calls[who]  # forget callers whose window has passed
        calls = self._calls.setdefault(caller, deque())
        while calls and calls[0] <= now - self.seconds:
            calls.popleft()
        if len(calls) >= self.count:
            return calls[0] + self.seconds - now
        calls.append(now)
        return 0.0


def is_viewer(p: rtc.Participant | None) -> bool:
    """A caller holding a viewer token: not an agent and not allowed to publish media."""
    if p is None:
        return True  # unknown callers get no more than viewers
    if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
        return False
    return not p.permissions.can_publish


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
    if isinstance(exc, CallerRefused):
        body = {"code": exc.code, "message": exc.message, "field": None}
        return rtc.RpcError(exc.rpc_code, exc.message, json.dumps(body))
    if isinstance(exc, GreenroomError):
        body = {"code": exc.code, "message": exc.message, "field": None}
        return rtc.RpcError(RPC_INTERNAL, exc.message, json.dumps(body))
    body = {"code": "internal", "message": "background switch failed", "field": None}
    return rtc.RpcError(RPC_INTERNAL, "background switch failed", json.dumps(body))


class BackgroundControl:
    """Switches the scene's background (Python method and RPC) and keeps the participant
    attributes in step with it: role, avatar, background and the key colour in use."""

    def __init__(
        self,
        scene: Scene,
        options: CompositorOptions,
        avatar_identity: str,
        session: str,
        resolve: BackgroundResolver | None = None,
    ) -> None:
        self._scene = scene
        self._options = options
        self._avatar_identity = avatar_identity
        self._session = session
        self._resolve = resolve
        self._room: rtc.Room | None = None
        self._key_color_attr = ""  # the key colour the attributes last said
        self._keyer_attr = ""  # the keyer the attributes last said
        self._limiter = RateLimiter(*options.rpc_rate)
        self.extra_attributes: dict[str, str] = {}
        """Published with the others (``lk.publish_on_behalf`` for a compositor of its own)."""
        self.follow_on_behalf: Callable[[], str | None] | None = None
        """Where to read the agent the avatar publishes for (mirrored once a second)."""

    async def bind(self, room: rtc.Room) -> None:
        """Answer the RPC in ``room`` and publish the attributes there."""
        self._room = room
        room.local_participant.register_rpc_method(RPC_SET_BACKGROUND, self._rpc_set_background)
        await self.publish_attributes()

    def unbind(self) -> None:
        room, self._room = self._room, None
        if room is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                room.local_participant.unregister_rpc_method(RPC_SET_BACKGROUND)

    async def set_background(
        self, spec: BackgroundSpec | str | dict[str, object], transition: float | None = None
    ) -> BackgroundSpec:
        """Validate and open ``spec``, then crossfade to it (see ``Compositor.set_background``)."""
        background = coerce_background(spec)
        seconds = self._options.transition if transition is None else check_transition(transition)
        # opening an image or video is I/O: keep it off the event loop and off the keyer
        await asyncio.to_thread(self._scene.set_background, background, seconds)
        logger.info(
            "background set",
            extra={"session": self._session, "background": background.to_attribute()},
        )
        await self.publish_attributes()
        return background

    async def run(self) -> None:
        """Once a second: mirror a newly found key colour (and the avatar's agent, see
        ``follow_on_behalf``) into the attributes."""
        while True:
            await asyncio.sleep(1.0)
            changed = self._key_color() != self._key_color_attr or self._keyer() != self._keyer_attr
            agent = self.follow_on_behalf() if self.follow_on_behalf else None
            if agent and self.extra_attributes.get(ATTR_PUBLISH_ON_BEHALF) != agent:
                self.extra_attributes[ATTR_PUBLISH_ON_BEHALF] = agent
                changed = True
            if changed:
                await self.publish_attributes()

    async def publish_attributes(self) -> None:
        room = self._room
        if room is None or not room.isconnected():
            return
        attrs = attributes_for(self._avatar_identity, self._scene.background)
        attrs.update(self.extra_attributes)
        self._key_color_attr = attrs[ATTR_KEY_COLOR] = self._key_color()
        self._keyer_attr = attrs[ATTR_KEYER] = self._keyer()
        try:
            await within(room.local_participant.set_attributes(attrs), ATTRIBUTE_TIMEOUT)
        except Exception as exc:  # attributes are a mirror, not the picture
            logger.warning("could not update attributes: %s", exc, extra={"session": self._session})

    def _keyer(self) -> str:
        state = self._scene.keyer_state()
        return json.dumps({"mode": state["mode"], "in_use": state["in_use"]})

    def _key_color(self) -> str:
        key = self._scene.key_color
        return "" if key is None else hex_color(key)

    # ----------------------------------------------------------------- the RPC door
    def _check_caller(self, caller: str) -> None:
        room = self._room
        if (
            not self._options.viewer_control
            and room is not None
            and is_viewer(room.remote_participants.get(caller))
        ):
            raise CallerRefused(
                f"{caller!r} holds a viewer token, and this session does not let viewers "
                "change the background (the template's viewer_control is off)",
                code="forbidden",
                rpc_code=RPC_FORBIDDEN,
            )
        wait = self._limiter.retry_after(caller, time.monotonic())
        if wait > 0:
            count, seconds = self._options.rpc_rate
            raise CallerRefused(
                f"too many background switches from {caller!r}: at most {count} per "
                f"{seconds:g} s; try again in {wait:.1f} s",
                code="rate_limited",
                rpc_code=RPC_RATE_LIMITED,
            )

    def _resolve_rpc_background(self, value: object) -> BackgroundSpec:
        """What a room participant may ask for (see ``CompositorOptions.rpc_file_paths``)."""
        if self._resolve is not None:
            return self._resolve(value)
        spec = coerce_background(value)
        if spec.kind in ("image", "video") and not self._options.rpc_file_paths:
            raise InvalidInput(
                "files cannot be chosen over RPC on this compositor; send a colour, "
                "'blur' or 'none' (the Greenroom service also takes library ids)",
                field="background",
            )
        return spec

    async def _rpc_set_background(self, data: rtc.RpcInvocationData) -> str:
        try:
            self._check_caller(data.caller_identity)
            spec, transition = parse_set_background(
                data.payload, self._resolve_rpc_background, self._options.rpc_max_payload
            )
            spec = await self.set_background(spec, transition)
        except Exception as exc:
            logger.info(
                "rejected background switch from %s: %s",
                data.caller_identity,
                exc,
                extra={"session": self._session},
            )
            raise to_rpc_error(exc) from None
        seconds = self._options.transition if transition is None else transition
        return json.dumps({"background": json.loads(spec.to_attribute()), "transition": seconds})


def attributes_for(avatar_identity: str, background: BackgroundSpec) -> dict[str, str]:
    """The participant attributes a compositor publishes about itself."""
    return {
        ATTR_ROLE: ROLE_COMPOSITOR,
        ATTR_AVATAR: avatar_identity,
        ATTR_BACKGROUND: background.to_attribute(),
    }
