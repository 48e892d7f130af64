"""LiveAvatar REST client: session token -> start -> keep-alive -> stop.

The account key goes in ``X-API-KEY`` (token, list); session calls carry
``Authorization: Bearer <session_token>``. Answers are ``{code, data, message}`` envelopes with
``code == 1000`` on success; anything else becomes a :class:`~greenroom.errors.ProviderError`.

``token`` and ``start`` are never sent twice blindly: a lost answer is settled by listing the
account's sessions first (see :mod:`greenroom.avatars._http`).
"""

from __future__ import annotations

from typing import Any

from greenroom.avatars._http import VendorAPI, vendor_error
from greenroom.avatars.base import VendorSessionRef
from greenroom.avatars.liveavatar.models import (
    SUCCESS_CODE,
    SessionToken,
    StartedSession,
    StopReason,
    TokenRequest,
)
from greenroom.errors import InvalidInput

VENDOR = "liveavatar"
DEFAULT_BASE_URL = "https://api.liveavatar.com"


class LiveAvatarAPI(VendorAPI):
    """Typed calls to ``/v1/sessions/*``; arguments as :class:`~greenroom.avatars._http.VendorAPI`."""

    vendor = VENDOR
    sessions_path = "/v1/sessions"
    key_header = "X-API-KEY"

    def _unwrap(self, answer: Any) -> Any:
        return _data(answer)

    async def create_token(self, request: TokenRequest) -> SessionToken:
        """``POST /v1/sessions/token`` -> session id + session-scoped token."""
        data = await self._create("/v1/sessions/token", request, request.avatar_id)
        return SessionToken.model_validate(data)

    async def start(self, token: SessionToken) -> StartedSession:
        """``POST /v1/sessions/start``: the avatar joins its room (once, whatever happens)."""
        path = "/v1/sessions/start"
        data = await self._call(
            path,
            {"session_id": token.session_id},
            bearer=token.session_token,
            once=True,
            lookup=self._state_lookup(path, token.session_id),
            slow=True,
        )
        return StartedSession.model_validate(data)

    async def keep_alive(self, token: SessionToken) -> None:
        await self._call(
            "/v1/sessions/keep-alive", {"session_id": token.session_id}, bearer=token.session_token
        )

    async def stop(self, token: SessionToken, reason: StopReason = StopReason.USER_CLOSED) -> None:
        await self._call(
            "/v1/sessions/stop",
            {"session_id": token.session_id, "reason": reason.value},
            bearer=token.session_token,
        )

    async def stop_session(self, ref: VendorSessionRef, reason: str) -> None:
        await self.stop(session_token(ref), StopReason(reason))

    async def keep_session_alive(self, ref: VendorSessionRef) -> None:
        await self.keep_alive(session_token(ref))


def session_token(ref: VendorSessionRef) -> SessionToken:
    """The session token a LiveAvatar session call needs, from a stored reference."""
    if not ref.stop_token:
        raise InvalidInput(
            "a LiveAvatar session is stopped with its session token; this reference has none",
            field="stop_token",
        )
    return SessionToken(session_id=ref.session_id, session_token=ref.stop_token)


def _data(answer: Any) -> Any:
    """Unwrap ``{code, data, message}``; a non-success code is an error even with HTTP 2xx."""
    if not isinstance(answer, dict) or "code" not in answer:
        return answer
    if answer.get("code") not in (SUCCESS_CODE, 200, 0):
        raise vendor_error(VENDOR, 200, answer)
    return answer.get("data")
