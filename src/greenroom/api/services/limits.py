"""How many sessions may run at once: per process and per API key.

A slot is taken before anything starts and given back when the session stops (or fails to
start), so a burst of requests cannot start more sessions than the limits allow.
"""

from __future__ import annotations

from collections import Counter

from greenroom.errors import GreenroomError

RETRY_AFTER_MIN = 1
RETRY_AFTER_MAX = 60
RETRY_AFTER_STARTING = 5  # a session that is starting frees or keeps its slot within seconds


class TooManySessions(GreenroomError):
    """The limit is reached; ``retry_after`` is a hint in whole seconds."""

    code = "too_many_sessions"
    status = 429

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class SessionSlots:
    """Counts the sessions of this process (starting or running), in total and per key."""

    def __init__(self, per_process: int, per_key: int) -> None:
        self.per_process = per_process
        self.per_key = per_key
        self._owner: dict[str, str] = {}  # session id -> key id
        self._per_key: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._owner)

    def take(self, session_id: str, key: str, retry_after: float | None) -> None:
        """Reserve a slot for ``session_id`` started with ``key``.

        Args:
            retry_after: seconds until a running session ends by itself, if known.

        Raises:
            TooManySessions: a limit is reached.
        """
        hint = RETRY_AFTER_STARTING if retry_after is None else retry_after
        hint = int(min(max(hint, RETRY_AFTER_MIN), RETRY_AFTER_MAX))
        if len(self._owner) >= self.per_process:
            raise TooManySessions(
                f"this server runs at most {self.per_process} sessions at once "
                "(GREENROOM_MAX_SESSIONS); stop one or try again later",
                retry_after=hint,
            )
        if self._per_key[key] >= self.per_key:
            raise TooManySessions(
                f"this API key may run at most {self.per_key} sessions at once "
                "(GREENROOM_MAX_SESSIONS_PER_KEY); stop one or try again later",
                retry_after=hint,
            )
        self._owner[session_id] = key
        self._per_key[key] += 1

    def give_back(self, session_id: str) -> None:
        key = self._owner.pop(session_id, None)
        if key is not None:
            self._per_key[key] -= 1
            if self._per_key[key] <= 0:
                del self._per_key[key]
