"""The HTTP API: templates, the background library and streaming sessions.

``create_app(settings)`` builds a fresh app (its own database engine, library and session
manager), so each test and each process gets its own. Routes are thin; the work happens in
``services/``, which knows nothing about FastAPI.
"""

from greenroom.api.app import create_app

__all__ = ["create_app"]
