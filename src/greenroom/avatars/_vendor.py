"""What the vendor providers (LiveAvatar, HeyGen) share: one start flow and one session base.

::

    VendorProviderBase.start(target, avatar_id=..., ...)
    ├── validate avatar id, quality, the vendor's own options   -> InvalidInput(field)
    ├── credentials: arguments, Settings, environment           -> ConfigError
    ├── _create: the vendor names the session                   -> session.vendor_session
    ├── on_vendor_session(ref): the caller records it (may be async)
    ├── _begin: start it, join the room, first frame
    └── anything failed after _create: release ours, stop the vendor's, re-raise
        (``vendor_session_leaked`` if the stop failed too)

An ``httpx.AsyncClient`` passed in stays the caller's; one made here belongs to the session
and is closed with it (or at once when the start fails). A subclass says only what differs:
its API client, its qualities and options, how a session is created and begun.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from livekit import rtc

from greenroom.avatars._http import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    VendorAPI,
    already_ended,
    stop_after_failure,
    vendor_credentials,
)
from greenroom.avatars._relay import Relay
from greenroom.avatars.base import (
    AvatarState,
    RoomTarget,
    SpeakMode,
    StateEmitter,
    VendorSessionCallback,
    VendorSessionRef,
)
from greenroom.config import Settings
from greenroom.errors import InvalidInput, ProviderError

log = logging.getLogger(__name__)

USER_CLOSED = "USER_CLOSED"  # stop reasons, in LiveAvatar's words (HeyGen takes none)
SERVER_ERROR = "SERVER_ERROR"
DEFAULT_READY_TIMEOUT = 60.0  # seconds for a relayed avatar's first video frame


@dataclass(frozen=True)
class StartArgs:
    """The arguments every vendor start takes, validated."""

    target: RoomTarget
    avatar_id: str
    voice: str | None
    identity: str
    quality: str
    ready_timeout: float


class VendorSession(StateEmitter):
    """A running vendor session: state, the vendor's id, stopping and releasing.

    ``vendor_session`` (a :class:`~greenroom.avatars.base.VendorSessionRef`) is set before
    the session begins; store it to stop the session after a crash. Subclasses implement
    ``speak``/``interrupt`` and, for relayed avatars, ``_on_data``.
    """

    provider: str
    label: ClassVar[str]  # the vendor's name in messages

    def __init__(self, api: VendorAPI, identity: str, ref: VendorSessionRef) -> None:
        super().__init__()
        self.api = api
        self.identity = identity
        self.vendor_session = ref
        self.relay: Relay | None = None
        self.events: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self._own_client = False
        self._closed = False
        self._vendor_ended = False  # the vendor said the session is over: no stop call needed

    @property
    def session_id(self) -> str:
        return self.vendor_session.session_id

    @property
    def ended(self) -> bool:
        return self._closed or self.state == AvatarState.STOPPED

    def _check_open(self) -> None:
        if self.ended:
            raise ProviderError(
                self.provider, f"the {self.label} session has ended", code="session_ended"
            )

    def _ended(self, why: str, *, by_vendor: bool = False) -> None:
        """The session ended without us: ``by_vendor`` when the vendor said so itself (its
        reason wins), else we lost it (the avatar left, a socket closed)."""
        if by_vendor:
            self._vendor_ended = True
            self.stop_reason = why
        elif self.ended:
            return
        else:
            self.stop_reason = self.stop_reason or why
        if self.state != AvatarState.STOPPED and not self._closed:
            log.warning("%s session %s ended: %s", self.label, self.session_id, why)
        self._set_state(AvatarState.STOPPED)

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        raise NotImplementedError

    async def interrupt(self) -> None:
        raise NotImplementedError

    async def keep_alive(self) -> None:
        """Tell the vendor the session is still wanted."""
        self._check_open()
        await self.api.keep_session_alive(self.vendor_session)

    async def _relay_in(
        self, target: RoomTarget, *, url: str, token: str, source: str | None, ready: float
    ) -> None:
        """Bring the avatar from the vendor's room (``url``, ``token``) into ``target``."""
        try:
            self.relay = await Relay.start(
                source_url=url,
                source_token=token,
                target=target,
                identity=self.identity,
                source_identity=source,
                attributes={"greenroom.provider": self.provider},
            )
        except (TimeoutError, ConnectionError, rtc.ConnectError) as exc:
            msg = f"could not join the {self.label} room and ours ({type(exc).__name__} {exc})"
            raise ProviderError(self.provider, msg.strip(), retryable=True) from exc
        self.relay.on_data(self._on_data)
        self.relay.on_source_gone(self._ended)
        try:
            await self.relay.wait_ready(ready)
        except TimeoutError:
            msg = f"the avatar published no video within {ready:g} s"
            raise ProviderError(self.provider, msg) from None
        except ConnectionError as exc:
            raise ProviderError(self.provider, str(exc)) from None

    def _on_data(self, payload: bytes, topic: str | None, sender: str) -> None:
        """A data message from the vendor's room (relayed sessions)."""

    def _mirror_state(self) -> None:
        """Show the state on our room's relay participant too."""
        if self.relay is not None:
            self.relay.spawn(self.relay.set_state(self.state.value))

    async def _release(self) -> None:
        """Drop local resources (relay, sockets, an owned HTTP client); no vendor call."""
        if self.relay is not None:
            await self.relay.aclose()
        if self._own_client:
            await self.api.http.client.aclose()

    async def aclose(self, reason: str = USER_CLOSED) -> None:
        """Stop the vendor session and release everything; idempotent.

        Raises:
            ProviderError: stopping the vendor session failed (it may keep running until its
                idle timeout); local resources are released regardless.
        """
        if self._closed:
            return
        self._closed = True
        error: ProviderError | None = None
        if not self._vendor_ended:
            try:
                await self.api.stop_session(self.vendor_session, reason)
            except ProviderError as exc:
                if not already_ended(exc):
                    error = exc
        self.stop_reason = self.stop_reason or str(reason)
        self._set_state(AvatarState.STOPPED)
        await self._release()
        if error is not None:
            raise error


S = TypeVar("S", bound=VendorSession)


class VendorProviderBase(Generic[S]):
    """Starts sessions of one vendor; see the module docstring for the flow."""

    name: str
    label: ClassVar[str]
    qualities: ClassVar[frozenset[str]]
    api_type: ClassVar[type[VendorAPI]]

    async def start(
        self,
        target: RoomTarget,
        *,
        avatar_id: str,
        voice: str | None = None,
        identity: str | None = None,
        quality: str = "high",
        api_key: str | None = None,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        settings: Settings | None = None,
        on_vendor_session: VendorSessionCallback | None = None,
        **options: Any,
    ) -> S:
        """Start a session whose avatar ends up in ``target.room`` as ``identity``.

        Args:
            on_vendor_session: called with the vendor's session reference as soon as the
                vendor names it, before the session begins; if it raises, the vendor session
                is stopped and the error re-raised.
            timeout: seconds one vendor call may take (a start, three times that);
                ready_timeout: seconds for the avatar's first video frame (relayed avatars).
            options: the vendor's own options (see the subclass); unknown ones are ignored.

        Raises:
            InvalidInput: bad avatar id, quality or option (field named).
            ConfigError: no API key configured for the vendor.
            ProviderError: the vendor refused or failed (vendor message and code kept).
        """
        if not isinstance(avatar_id, str) or not avatar_id.strip():
            raise InvalidInput(f"avatar_id is required for {self.label}", field="avatar_id")
        if quality not in self.qualities:
            allowed = ", ".join(sorted(self.qualities))
            raise InvalidInput(f"quality must be one of {allowed}", field="quality")
        options = self._check_options(options)
        args = StartArgs(
            target,
            avatar_id,
            voice,
            identity or f"{self.name}-{uuid.uuid4().hex[:8]}",
            quality,
            ready_timeout,
        )
        api = self._api(api_key, base_url, client, retry, timeout, settings)
        try:
            session = await self._create(api, args, **options)
        except BaseException:
            if client is None:
                await api.http.client.aclose()
            raise
        session._own_client = client is None
        try:
            if on_vendor_session is not None:
                result = on_vendor_session(session.vendor_session)
                if inspect.isawaitable(result):
                    await result
            await self._begin(session, args, **options)
        except BaseException as exc:
            session._own_client = False  # the client is still needed for the stop
            await session._release()
            try:
                await stop_after_failure(
                    self.name,
                    session.session_id,
                    lambda: api.stop_session(session.vendor_session, SERVER_ERROR),
                    exc,
                )
            finally:
                if client is None:
                    await api.http.client.aclose()
        session._set_state(AvatarState.IDLE)
        return session

    async def stop_session(
        self,
        ref: VendorSessionRef,
        *,
        settings: Settings | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> bool:
        """Stop a session recorded earlier (e.g. by a process that has since died).

        Returns:
            True if it was stopped now, False if the vendor says it had already ended.
        """
        api = self._api(api_key, base_url, client, DEFAULT_RETRY, DEFAULT_TIMEOUT, settings)
        try:
            await api.stop_session(ref, SERVER_ERROR)
        except ProviderError as exc:
            if already_ended(exc):
                return False
            raise
        finally:
            if client is None:
                await api.http.client.aclose()
        log.info("stopped %s session %s by reference", self.name, ref.session_id)
        return True

    def _api(
        self,
        api_key: str | None,
        base_url: str | None,
        client: httpx.AsyncClient | None,
        retry: RetryPolicy,
        timeout: float,
        settings: Settings | None,
    ) -> VendorAPI:
        key, url = vendor_credentials(self.name, self.label, api_key, base_url, settings)
        return self.api_type(url, key, client or httpx.AsyncClient(), retry=retry, timeout=timeout)

    def _check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate (and normalise) the vendor's own options; raises InvalidInput."""
        return options

    async def _create(self, api: Any, args: StartArgs, **options: Any) -> S:
        """Ask the vendor for a session; returns it with ``vendor_session`` set, not begun."""
        raise NotImplementedError

    async def _begin(self, session: S, args: StartArgs, **options: Any) -> None:
        """Start the vendor session and bring its avatar into ``args.target``."""
        raise NotImplementedError
