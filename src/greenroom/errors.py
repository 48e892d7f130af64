"""The error hierarchy every part of Greenroom raises.

::

    GreenroomError(code, status)            any failure we can name
    ├── ConfigError                         missing or invalid configuration
    ├── SetupError                          a component that is not installed (binary, model)
    ├── InvalidInput(field)                 bad user input, 422 at the API
    ├── NotFound                            unknown template, session, background (404)
    ├── Conflict                            wrong state (409)
    └── ProviderError(vendor, retryable)    a vendor API answered with an error

The API turns each into ``{"error": {"code", "message", "field"}}`` with ``status``.
"""

from __future__ import annotations


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


class ProviderError(GreenroomError):
    """A vendor API failed. ``retryable`` is true for 408, 429 and 5xx answers."""

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
    ):
        super().__init__(f"{vendor}: {message}", code=code)
        self.vendor = vendor
        self.http_status = http_status
        self.body = body
        self.retryable = retryable
