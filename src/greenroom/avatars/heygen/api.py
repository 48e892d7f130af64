"""HeyGen Streaming API client (legacy ``/v1/streaming.*``, LiveKit transport ``version: "v2"``).

The account key goes in ``X-Api-Key``. Answers carry their payload in ``data``; errors are
``{code, message}`` with an HTTP error status. HTTP 410 means HeyGen has shut the
Streaming API down; the error says to use the LiveAvatar provider instead.

``streaming.new``, ``.start`` and ``.task`` are never sent twice blindly: a lost answer to
``new`` or ``start`` is settled by listing the account's sessions, and a lost answer to a
``task`` is an error (HeyGen has no way to ask whether a sentence was queued).
"""

from __future__ import annotations

from typing import Any

from greenroom.avatars._http import VendorAPI
from greenroom.avatars.base import VendorSessionRef
from greenroom.avatars.heygen.models import NewSession, NewSessionRequest, TaskRequest, TaskResult

VENDOR = "heygen"
DEFAULT_BASE_URL = "https://api.heygen.com"


class HeyGenAPI(VendorAPI):
    """Typed calls to ``/v1/streaming.*``; arguments as :class:`~greenroom.avatars._http.VendorAPI`."""

    vendor = VENDOR
    sessions_path = "/v1/streaming.list"
    key_header = "X-Api-Key"

    def _unwrap(self, answer: Any) -> Any:
        return answer.get("data") if isinstance(answer, dict) else answer

    async def new_session(self, request: NewSessionRequest) -> NewSession:
        data = await self._create("/v1/streaming.new", request, request.avatar)
        return NewSession.model_validate(data)

    async def start(self, session_id: str) -> None:
        path = "/v1/streaming.start"
        # start returns nothing we need, so a start that took effect counts as answered
        lookup = self._state_lookup(path, session_id, done={"data": None})
        await self._call(path, {"session_id": session_id}, once=True, lookup=lookup, slow=True)

    async def task(self, request: TaskRequest) -> TaskResult:
        data = await self._call(
            "/v1/streaming.task", request.model_dump(exclude_none=True), once=True
        )
        return TaskResult.model_validate(data or {})

    async def interrupt(self, session_id: str) -> None:
        await self._call("/v1/streaming.interrupt", {"session_id": session_id})

    async def keep_alive(self, session_id: str) -> None:
        await self._call("/v1/streaming.keep_alive", {"session_id": session_id})

    async def stop(self, session_id: str) -> None:
        await self._call("/v1/streaming.stop", {"session_id": session_id})

    async def stop_session(self, ref: VendorSessionRef, reason: str) -> None:
        await self.stop(ref.session_id)

    async def keep_session_alive(self, ref: VendorSessionRef) -> None:
        await self.keep_alive(ref.session_id)
