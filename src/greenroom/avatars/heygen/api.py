"""HeyGen Streaming API client (legacy ``/v1/streaming.*``, LiveKit transport ``version: "v2"``).

The account key goes in ``X-Api-Key``. Answers carry their payload in ``data``; errors are
``{code, message}`` with an HTTP error status. HTTP 410 means HeyGen has shut the
Streaming API down; the error says to use the LiveAvatar provider instead.
"""

from __future__ import annotations

from typing import Any

import httpx

from greenroom.avatars._http import DEFAULT_RETRY, RetryPolicy, VendorHTTP
from greenroom.avatars.heygen.models import NewSession, NewSessionRequest, TaskRequest, TaskResult

VENDOR = "heygen"
DEFAULT_BASE_URL = "https://api.heygen.com"


class HeyGenAPI:
    """Typed calls to ``/v1/streaming.*``; see :class:`~greenroom.avatars.liveavatar.api.LiveAvatarAPI`
    for the argument conventions."""

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

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        answer = await self.http.request(
            "POST",
            path,
            json=body,
            headers={"X-Api-Key": self._api_key, "accept": "application/json"},
        )
        return answer.get("data") if isinstance(answer, dict) else answer

    async def new_session(self, request: NewSessionRequest) -> NewSession:
        data = await self._post(
            "/v1/streaming.new", request.model_dump(mode="json", exclude_none=True)
        )
        return NewSession.model_validate(data)

    async def start(self, session_id: str) -> None:
        await self._post("/v1/streaming.start", {"session_id": session_id})

    async def task(self, request: TaskRequest) -> TaskResult:
        data = await self._post("/v1/streaming.task", request.model_dump(exclude_none=True))
        return TaskResult.model_validate(data or {})

    async def interrupt(self, session_id: str) -> None:
        await self._post("/v1/streaming.interrupt", {"session_id": session_id})

    async def keep_alive(self, session_id: str) -> None:
        await self._post("/v1/streaming.keep_alive", {"session_id": session_id})

    async def stop(self, session_id: str) -> None:
        await self._post("/v1/streaming.stop", {"session_id": session_id})

    async def list_sessions(self) -> list[dict[str, Any]]:
        answer = await self.http.request(
            "GET", "/v1/streaming.list", headers={"X-Api-Key": self._api_key}
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        return list((data or {}).get("sessions", []))
