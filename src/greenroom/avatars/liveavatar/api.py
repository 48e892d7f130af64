"""LiveAvatar REST client: session token -> start -> keep-alive -> stop.

The account key goes in ``X-API-KEY`` (token, list); session calls carry
``Authorization: Bearer <session_token>``. Answers are ``{code, data, message}`` envelopes with
``code == 1000`` on success; anything else becomes a :class:`~greenroom.errors.ProviderError`.
"""

from __future__ import annotations

from typing import Any

import httpx

from greenroom.avatars._http import DEFAULT_RETRY, RetryPolicy, VendorHTTP, vendor_error
from greenroom.avatars.liveavatar.models import (
    SUCCESS_CODE,
    SessionToken,
    StartedSession,
    StopReason,
    TokenRequest,
)

VENDOR = "liveavatar"
DEFAULT_BASE_URL = "https://api.liveavatar.com"


class LiveAvatarAPI:
    """Typed calls to ``/v1/sessions/*``.

    Args:
        base_url: API root, e.g. ``https://api.liveavatar.com`` or an emulator's URL.
        api_key: the account key (never logged).
        client: a shared ``httpx.AsyncClient`` (tests pass one with an ASGI transport).
        retry: retry policy for 429/5xx/network failures.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self._api_key = api_key
        self.http = VendorHTTP(VENDOR, base_url, client, retry=retry)

    async def _call(self, path: str, body: dict[str, Any], *, bearer: str | None = None) -> Any:
        headers = {"accept": "application/json"}
        if bearer is None:
            headers["X-API-KEY"] = self._api_key
        else:
            headers["Authorization"] = f"Bearer {bearer}"
        answer = await self.http.request("POST", path, json=body, headers=headers)
        return _data(answer)

    async def create_token(self, request: TokenRequest) -> SessionToken:
        """``POST /v1/sessions/token`` -> session id + session-scoped token."""
        data = await self._call(
            "/v1/sessions/token", request.model_dump(mode="json", exclude_none=True)
        )
        return SessionToken.model_validate(data)

    async def start(self, token: SessionToken) -> StartedSession:
        """``POST /v1/sessions/start``: the avatar joins its room."""
        data = await self._call(
            "/v1/sessions/start", {"session_id": token.session_id}, bearer=token.session_token
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

    async def list_sessions(self) -> list[dict[str, Any]]:
        """``GET /v1/sessions``: the account's sessions (shape passed through)."""
        answer = await self.http.request(
            "GET", "/v1/sessions", headers={"X-API-KEY": self._api_key}
        )
        data = _data(answer)
        if isinstance(data, dict):
            data = data.get("sessions", data.get("results", []))
        return list(data or [])


def _data(answer: Any) -> Any:
    """Unwrap ``{code, data, message}``; a non-success code is an error even with HTTP 2xx."""
    if not isinstance(answer, dict) or "code" not in answer:
        return answer
    if answer.get("code") not in (SUCCESS_CODE, 200, 0):
        raise vendor_error(VENDOR, 200, answer)
    return answer.get("data")
