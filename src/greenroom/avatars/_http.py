"""HTTP plumbing shared by the vendor clients (LiveAvatar, HeyGen).

Every vendor error enters Greenroom here, once, as a :class:`~greenroom.errors.ProviderError`
that keeps the vendor's own message and numeric code::

    VendorHTTP.request()
    ├── 2xx                          -> parsed JSON body
    ├── 429, 408, 5xx, network error -> retried with backoff, within RetryPolicy's budget
    └── anything else / budget spent -> ProviderError(vendor, message, http_status, retryable,
                                                      vendor_code)

Known vendor codes get a stable Greenroom ``code`` (and API status) so callers and users can
tell "that avatar does not exist" from "your account is at its session limit".

Calls that start something (a session, a sentence) are sent with ``replay_safe=False``: when
their outcome is unknown (the request left us but no answer came back, or a gateway gave up
waiting) they are never sent again blindly, since the vendor may have acted on the first one
and a second would start a second paid session or speak twice. Such a call may pass a
``lookup`` that asks the vendor what happened; only when it finds the call had no effect is
the call sent again. Without one the caller gets ``vendor_outcome_unknown``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import httpx
from pydantic import BaseModel

from greenroom.avatars.base import VendorSessionRef
from greenroom.config import Settings, get_settings
from greenroom.errors import ConfigError, ProviderError

log = logging.getLogger(__name__)

Lookup = Callable[[], Awaitable[Any]]

#: HTTP statuses worth trying again (LiveKit Agents' rule: a 4xx is final except these).
RETRYABLE_STATUSES = frozenset({408, 429, 499, 500, 502, 503, 504})
#: Answers that do not say whether the vendor acted: a proxy or gateway gave up waiting.
UNKNOWN_OUTCOME_STATUSES = frozenset({499, 502, 504})
#: Transport failures that happen before the request leaves us: the vendor cannot have acted.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
DEFAULT_TIMEOUT = 30.0  # seconds for one vendor call
#: A start, where the vendor brings its avatar up, may take this many times as long.
START_TIMEOUT_FACTOR = 3.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on a vendor call.

    Attributes:
        attempts: tries in all, including the first (>= 1).
        base_delay: seconds before the second try; doubles each time, with jitter.
        max_delay: cap on one wait, also on a vendor's ``Retry-After``.
        budget: cap on the total seconds spent waiting between tries.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 4.0
    budget: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if min(self.base_delay, self.max_delay, self.budget) < 0:
            raise ValueError("delays and budget must be >= 0")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        d = self.base_delay * 2.0 ** (attempt - 1)
        return min(d * (0.8 + 0.4 * random.random()), self.max_delay)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)

WRONG_STATE = 400006  # "Session is not in correct state" (also: it has already ended)

# Vendor codes we recognise -> (Greenroom code, API status, hint added to the vendor's message).
KNOWN_CODES: dict[int, tuple[str, int, str]] = {
    10013: ("avatar_not_found", 404, "check the avatar id in the template"),
    400006: ("vendor_session_state", 409, "the vendor session is not in a state for this call"),
    10003: ("avatar_deprecated", 422, "this avatar version is deprecated; pick a newer avatar"),
    400014: ("avatar_deprecated", 422, "this avatar version is deprecated; pick a newer avatar"),
    400112: ("avatar_unsupported", 422, "the avatar or voice is not supported by this API"),
}

SUNSET_MESSAGE = (
    "the HeyGen Streaming API has been shut down (HTTP 410 Gone); "
    "use the 'liveavatar' provider instead"
)


def vendor_error(
    vendor: str,
    http_status: int | None,
    body: Any,
    *,
    fallback: str = "",
    sunset_message: str = SUNSET_MESSAGE,
) -> ProviderError:
    """Build the one ProviderError for a failed vendor answer (status + parsed body)."""
    vcode, vmessage = _code_and_message(body)
    message = vmessage or fallback or f"HTTP {http_status}"
    retryable = http_status in RETRYABLE_STATUSES
    code, status, hint = "provider_error", 502, ""
    if vcode is not None and vcode in KNOWN_CODES:
        code, status, hint = KNOWN_CODES[vcode]
    elif http_status == 404 and "avatar" in message.lower():
        # LiveAvatar documents no numeric code for this; its answer is a 404 naming the avatar
        code, status, hint = "avatar_not_found", 404, "check the avatar id in the template"
    elif "concurren" in message.lower():
        code, status = "vendor_concurrency_limit", 429
        hint = "the account is at its limit of simultaneous sessions; stop one and retry"
        retryable = False
    elif http_status == 410:
        code, status, message = "vendor_sunset", 410, f"{sunset_message} ({message})"
    elif http_status in (401, 403):
        code, status = "vendor_auth_failed", 502
        hint = f"check the {vendor} API key (GREENROOM_{vendor.upper()}_API_KEY)"
    elif http_status == 429:
        code, status = "vendor_rate_limited", 429
    elif http_status == 422 or http_status == 400:
        code, status = "vendor_rejected_request", 502
    if hint:
        message = f"{message} ({hint})"
    if vcode is not None:
        message = f"{message} [vendor code {vcode}]"
    return ProviderError(
        vendor,
        message,
        http_status=http_status,
        body=body,
        retryable=retryable,
        code=code,
        status=status,
        vendor_code=vcode,
    )


def already_ended(exc: BaseException) -> bool:
    """The vendor refused a stop because the session is over (wrong state, or gone)."""
    return isinstance(exc, ProviderError) and (
        exc.vendor_code == WRONG_STATE or exc.http_status == 404
    )


def outcome_unknown(vendor: str, what: str, why: str) -> ProviderError:
    """The error for a call that may or may not have taken effect and is not sent again."""
    return ProviderError(
        vendor,
        f"{what}: {why}; the vendor may have acted on it, so it was not sent again",
        code="vendor_outcome_unknown",
        retryable=False,
    )


def _code_and_message(body: Any) -> tuple[int | None, str]:
    """Pull ``code`` and ``message`` out of the vendors' error shapes."""
    if not isinstance(body, dict):
        return None, str(body).strip()[:500] if body else ""
    code = body.get("code")
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    message = body.get("message") or body.get("error") or ""
    if isinstance(message, dict):
        message = message.get("message", "")
    detail = body.get("detail")
    if not message and detail:
        # FastAPI-style validation errors: [{"loc": [...], "msg": ...}]
        if isinstance(detail, list):
            parts = [
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}"
                for d in detail
                if isinstance(d, dict)
            ]
            message = "; ".join(parts)
        else:
            message = str(detail)
    if not message and isinstance(body.get("data"), dict):
        message = str(body["data"].get("message", ""))
    return code, str(message)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class VendorHTTP:
    """One vendor's HTTP edge: base URL, shared AsyncClient, retry, error mapping.

    Example::

        http = VendorHTTP("liveavatar", "https://api.liveavatar.com", client)
        body = await http.request("POST", "/v1/sessions/token", json={...}, headers={...})
    """

    def __init__(
        self,
        vendor: str,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.retry = retry
        self.timeout = timeout

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        replay_safe: bool = True,
        lookup: Lookup | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request, retrying transient failures; returns the JSON body.

        Args:
            replay_safe: sending the call twice does no harm (reads, keep-alive, stop). False
                for calls that start something: see the module docstring.
            lookup: for a call that is not replay-safe, asked after an unknown outcome: returns
                None if the call had no effect (it is then sent again), else a body that stands
                for the lost answer; raises if neither can be told.
            timeout: seconds this call may take (default: the client's).

        Raises:
            ProviderError: the vendor answered with an error, or could not be reached;
                ``vendor_outcome_unknown`` when a call that is not replay-safe got no answer.
        """
        policy = retry or self.retry
        url = f"{self.base_url}{path}"
        waited = 0.0
        last: ProviderError | None = None
        for attempt in range(1, policy.attempts + 1):
            retry_after: float | None = None
            unknown: str | None = None  # why the outcome is unknown, if it is
            try:
                response = await self.client.request(
                    method,
                    url,
                    json=json,
                    headers=headers,
                    params=params,
                    timeout=timeout or self.timeout,
                )
            except httpx.TransportError as exc:
                last = ProviderError(
                    self.vendor,
                    f"could not reach {self.base_url}: {type(exc).__name__} {exc}".strip(),
                    retryable=True,
                    code="vendor_unreachable",
                )
                if not isinstance(exc, NOT_SENT_ERRORS):
                    unknown = f"no answer ({type(exc).__name__})"
            else:
                body = _json_or_text(response)
                if response.is_success:
                    return body
                last = vendor_error(
                    self.vendor, response.status_code, body, fallback=response.reason_phrase
                )
                retry_after = _retry_after(response)
                if response.status_code in UNKNOWN_OUTCOME_STATUSES:
                    unknown = f"HTTP {response.status_code}"
            if unknown is not None and not replay_safe:
                if lookup is None:
                    raise outcome_unknown(self.vendor, f"{method} {path}", unknown) from last
                found = await lookup()
                if found is not None:
                    log.info("%s %s %s: %s, but it took effect", self.vendor, method, path, unknown)
                    return found
            if not last.retryable or attempt == policy.attempts:
                break
            pause = policy.delay(attempt, retry_after)
            if waited + pause > policy.budget:
                break
            log.info(
                "%s %s %s failed (%s), retry %d/%d in %.2fs",
                self.vendor,
                method,
                path,
                last.http_status or "network",
                attempt,
                policy.attempts - 1,
                pause,
            )
            started = time.monotonic()
            await asyncio.sleep(pause)
            waited += time.monotonic() - started
        assert last is not None
        raise last


LIVE_STATES = frozenset({"new", "connecting", "connected", "active", "started", "running"})


class CreatedSessions:
    """The vendor session ids this process has been handed back by create calls (bounded).

    A create call whose answer was lost asks the vendor's list what happened; a session this
    process was already given cannot be that call's doing, however close in time (vendors
    list ``created_at`` in whole seconds), so it is left out of the search.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._limit = limit

    def add(self, base_url: str, session_id: str) -> None:
        self._ids[(base_url, session_id)] = None
        self._ids.move_to_end((base_url, session_id))
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._ids


#: shared by every vendor client of the process (one per session, one per reconciliation)
CREATED = CreatedSessions()


class VendorAPI:
    """What both vendor clients share: the HTTP edge, the account key, the outcome lookups.

    Args:
        base_url: API root, the vendor's or an emulator's URL.
        api_key: the account key (never logged).
        client: a shared ``httpx.AsyncClient`` (tests pass one with an ASGI transport).
        retry: retry policy for 429/5xx/network failures.
        timeout: seconds one call may take; a start gets ``START_TIMEOUT_FACTOR`` times that.
    """

    vendor: ClassVar[str]
    key_header: ClassVar[str]  # the header that carries the account key
    sessions_path: ClassVar[str]  # GET: the account's sessions

    def __init__(
        self,
        base_url: str,
        api_key: str,
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._api_key = api_key
        self.http = VendorHTTP(self.vendor, base_url, client, retry=retry, timeout=timeout)

    def _key_headers(self) -> dict[str, str]:
        return {self.key_header: self._api_key, "accept": "application/json"}

    def _unwrap(self, answer: Any) -> Any:
        """The payload of a successful answer (the vendor's envelope removed)."""
        return answer

    async def _call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        bearer: str | None = None,
        once: bool = False,
        lookup: Lookup | None = None,
        slow: bool = False,
    ) -> Any:
        """POST ``body`` with the account key (or ``bearer``, a session token); ``once``: not
        replay-safe (see the module docstring); ``slow``: a start, given longer."""
        headers = self._key_headers()
        if bearer is not None:
            headers = {"Authorization": f"Bearer {bearer}", "accept": "application/json"}
        answer = await self.http.request(
            "POST",
            path,
            json=body,
            headers=headers,
            replay_safe=not once,
            lookup=lookup,
            timeout=self.http.timeout * START_TIMEOUT_FACTOR if slow else None,
        )
        return self._unwrap(answer)

    async def _create(self, path: str, request: BaseModel, avatar_id: str | None) -> Any:
        """A call that creates a session: sent once, a lost answer settled by a lookup."""
        body = request.model_dump(mode="json", exclude_none=True)
        data = await self._call(path, body, once=True, lookup=self._created_lookup(path, avatar_id))
        if isinstance(data, dict) and data.get("session_id"):
            CREATED.add(self.http.base_url, str(data["session_id"]))
        return data

    async def list_sessions(self) -> list[dict[str, Any]]:
        """The account's sessions as the vendor lists them (``session_id``, ``status``...)."""
        answer = await self.http.request("GET", self.sessions_path, headers=self._key_headers())
        data = self._unwrap(answer)
        if isinstance(data, dict):
            data = data.get("sessions", data.get("results", []))
        return list(data or [])

    async def stop_session(self, ref: VendorSessionRef, reason: str) -> None:
        """Stop the session ``ref`` (``reason`` in LiveAvatar's words; HeyGen takes none)."""
        raise NotImplementedError

    async def keep_session_alive(self, ref: VendorSessionRef) -> None:
        raise NotImplementedError

    def _created_lookup(self, what: str, avatar_id: str | None) -> Lookup:
        """For a call that creates a session: it had no effect if no live session that could
        be ours (same avatar where listed, created since now, not one this process was already
        given) appears in the account's list."""
        since = int(time.time()) - 1  # vendors list whole seconds

        def maybe_ours(s: dict[str, Any]) -> bool:
            return (
                (self.http.base_url, str(s.get("session_id"))) not in CREATED
                and str(s.get("status", "new")).lower() in LIVE_STATES
                and _as_number(s.get("created_at"), since) >= since
                and s.get("avatar_id", avatar_id) == avatar_id
            )

        async def lookup() -> None:
            fresh = [str(s.get("session_id")) for s in await self.list_sessions() if maybe_ours(s)]
            if fresh:
                why = f"no answer, and the account now has session(s) {', '.join(fresh)}"
                raise outcome_unknown(self.vendor, what, why)

        return lookup

    def _state_lookup(self, what: str, session_id: str, *, done: Any = None) -> Lookup:
        """For a call that moves ``session_id`` on from ``new``: it had no effect while the
        vendor still lists the session as ``new``; ``done`` (if not None) stands for the answer
        once it has moved on, else the outcome cannot be used and is an error."""

        async def lookup() -> Any:
            for s in await self.list_sessions():
                if str(s.get("session_id")) == session_id:
                    status = str(s.get("status", "")).lower()
                    if status == "new":
                        return None
                    if done is not None and status in LIVE_STATES:
                        return done
                    raise outcome_unknown(self.vendor, what, f"no answer; session is {status}")
            raise outcome_unknown(self.vendor, what, "no answer; the session is not listed")

        return lookup


def _as_number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


async def stop_after_failure(
    vendor: str, session_id: str, stop: Callable[[], Awaitable[object]], cause: BaseException
) -> NoReturn:
    """Our start failed after the vendor session began: stop it, then re-raise ``cause``.

    If stopping fails too, the error says so, because the vendor session may keep running
    (and using credits) until the vendor's own idle timeout ends it.
    """
    try:
        await stop()
    except Exception as stop_exc:
        if already_ended(stop_exc):
            raise cause from None
        why = cause.message if isinstance(cause, ProviderError) else f"{cause}"
        raise ProviderError(
            vendor,
            f"{why}; stopping {vendor} session {session_id} also failed ({stop_exc}), so it may "
            f"keep running until {vendor}'s idle timeout ends it",
            code="vendor_session_leaked",
        ) from cause
    log.info("stopped %s session %s after a failed start", vendor, session_id)
    raise cause


def vendor_credentials(
    vendor: str,
    label: str,
    api_key: str | None,
    base_url: str | None,
    settings: Settings | None,
) -> tuple[str, str]:
    """The API key and base URL for ``vendor`` ("liveavatar", "heygen"): explicit arguments,
    else the given Settings, else the environment (``GREENROOM_<VENDOR>_API_KEY`` / ``_BASE_URL``).

    Raises:
        ConfigError: no key anywhere; the message says how to set one or use the emulator.
    """
    settings = settings or get_settings()
    secret = getattr(settings, f"{vendor}_api_key")
    key = api_key or (secret.get_secret_value() if secret else None)
    if not key:
        env = f"GREENROOM_{vendor.upper()}"
        raise ConfigError(
            f"no {label} API key: set {env}_API_KEY, or run 'greenroom emulate {vendor}' "
            f"and set {env}_BASE_URL to it"
        )
    return key, base_url or getattr(settings, f"{vendor}_base_url")
