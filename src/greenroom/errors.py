"""The error hierarchy every part of Greenroom raises.

::

    GreenroomError(code, status)            any failure we can name
    ├── ConfigError                         missing or invalid configuration
    ├── SetupError                          a component that is not installed (binary, model)
    ├── InvalidInput(field)                 bad user input, 422 at the API
    ├── Unauthorized                        no or wrong API key / viewer token (401)
    ├── Forbidden                           a credential that may not do this (403)
    ├── NotFound                            unknown template, session, background (404)
    ├── Conflict                            wrong state (409)
    │   ├── AlreadyRunning                  a second ``greenroom demo`` on one data dir
    │   └── CompositorClosed                the compositor ended before the awaited event
    ├── TooLarge                            an upload over the library's limits (413)
    ├── StartFailed                         a session could not start (503)
    └── ProviderError(vendor, retryable,    a vendor API answered with an error, or could not
                      vendor_code)          be reached; ``vendor_code`` is the vendor's own code

The API turns each into ``{"error": {"code", "message", "field"}}`` with ``status``.
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunning",
    "CompositorClosed",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "GreenroomError",
    "InsufficientStorage",
    "InvalidInput",
    "NotFound",
    "ProviderError",
    "SetupError",
    "StartFailed",
    "TooLarge",
    "Unauthorized",
]


class GreenroomError(Exception):
    """Base of every error Greenroom raises on purpose."""

    code: str = "error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ConfigError(GreenroomError):
    code = "config_error"
    status = 500


class SetupError(GreenroomError):
    """A component Greenroom needs is not installed; the message says how to install it."""

    code = "setup_error"
    status = 500


class InvalidInput(GreenroomError):
    """A value given by the user is wrong; ``field`` names it."""

    code = "invalid_input"
    status = 422

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message, code=code, status=status)
        self.field = field


class NotFound(GreenroomError):
    code = "not_found"
    status = 404


class Conflict(GreenroomError):
    code = "conflict"
    status = 409


class Unauthorized(GreenroomError):
    """No credential, or a wrong one (the API key, a viewer token)."""

    code = "unauthorized"
    status = 401


class Forbidden(GreenroomError):
    """A valid credential that may not do this."""

    code = "forbidden"
    status = 403


class AlreadyRunning(Conflict):
    """Another ``greenroom demo`` holds this data directory."""

    code = "already_running"


class CompositorClosed(Conflict):
    """The compositor ended (``reason`` says why) before the awaited event happened."""

    code = "compositor_closed"


class TooLarge(GreenroomError):
    """The upload is bigger than the library accepts (HTTP 413)."""

    code = "payload_too_large"
    status = 413


class InsufficientStorage(GreenroomError):
    """The server ran out of disk space while storing something (HTTP 507): not the caller's
    fault, and nothing was kept."""

    code = "insufficient_storage"
    status = 507


class StartFailed(GreenroomError):
    """A session could not start for a reason that is not the user's input."""

    code = "session_start_failed"
    status = 503


class ProviderError(GreenroomError):
    """A vendor API failed.

    Args:
        vendor: ``"liveavatar"``, ``"heygen"``...; the message is prefixed with it.
        http_status: the vendor's HTTP status (None: no answer, e.g. unreachable).
        body: the vendor's parsed answer, kept for logs.
        retryable: true for 408, 429 and 5xx answers and unreachable vendors.
        code: Greenroom's stable code for this failure (``avatar_not_found``...).
        status: the status our API answers with (default 502).
        vendor_code: the vendor's own numeric code (e.g. HeyGen's 400006), if it sent one.
    """

    code = "provider_error"
    status = 502

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        http_status: int | None = None,
        body: object = None,
        retryable: bool = False,
        code: str | None = None,
        status: int | None = None,
        vendor_code: int | None = None,
    ):
        super().__init__(f"{vendor}: {message}", code=code, status=status)
        self.vendor = vendor
        self.http_status = http_status
        self.body = body
        self.retryable = retryable
        self.vendor_code = vendor_code
